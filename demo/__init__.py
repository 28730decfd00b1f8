"""Demo makers for tours, tests and benchmarks — never imported by the product (`vlmkit/`, `dataprocess/`).

- `demo.tiny`: TINY random models built from config (`python -m demo.tiny OUT --models ...`), and real-size random
  models from the published configs (`--size real`; the configs themselves live in `vlmkit.model_configs`).
- `demo.procedural`: textured GLB vases (surfaces of revolution with friezes) for examples, tests and benchmarks.
- `demo.openai_standin`: a STAND-IN OpenAI-compatible server on 127.0.0.1 (not a model) for tests and benchmarks.

`tests/test_layering.py` checks that no product module imports this package.
"""
