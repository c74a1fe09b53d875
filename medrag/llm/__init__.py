"""medrag.llm"""
