"""medrag.integrations"""
