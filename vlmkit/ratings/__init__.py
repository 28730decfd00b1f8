"""Ratings from pairwise votes (rate.py): Bradley–Terry with bootstrap CIs, judge consistency, length control, and
which automatic metric agrees with the human votes. See docs/judges.md."""
