"""What reproduce.py reproduces.

  paper_tables  the papers' published numbers, row by row, each with our config
"""
