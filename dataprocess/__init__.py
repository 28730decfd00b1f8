"""Data processing: explore, filter, convert and augment caption data sets."""
