"""medrag.index"""
