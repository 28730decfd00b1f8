"""The review-and-vote app (review.py): browse a compare run, cast blind A/B votes, caption live.

`data` reads a compare run, `pairs` schedules blind pairs over every model pair, `app` is the FastAPI app serving the
plain HTML/JS page in `static/`, `live` is the optional live caption panel, `server` is review.py's options and
`run(options)`. Votes go through `vlmkit.votes`.
See docs/review.md.
"""
