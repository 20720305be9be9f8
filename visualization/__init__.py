"""What visualize.py draws: `plots`, its matplotlib figures written as PNG files."""
