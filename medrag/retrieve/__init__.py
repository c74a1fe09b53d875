"""medrag.retrieve"""
