"""What reproduce.py reproduces: `paper_tables`, the papers' numbers, each row with our config."""
