"""medrag.reason"""
