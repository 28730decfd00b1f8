"""Ranking shared by compare's R@k and retrieval's R@K / MRR / NDCG (filled in below)."""

RECALL_KS = (1, 5, 10)  # the k of every R@k this toolkit reports (compare.py and retrieval.py)
