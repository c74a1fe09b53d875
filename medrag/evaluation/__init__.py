"""medrag.evaluation"""
