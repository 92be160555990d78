"""Reports: BM03 figures, their files (.xlsx, .pdf) and charts, the archive of reports made."""
