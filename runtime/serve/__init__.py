"""edgembed.serve: `edgembed serve`, a local HTTP server with OpenAI's embeddings API and
search over an index (the `serve` extra). app.py holds the routes, the ASGI app and start-up;
requests.py the parsing and checking of request bodies; batcher.py the worker thread that
coalesces concurrent requests into batches.

Nothing is imported here: Starlette and uvicorn load only with `edgembed.serve.app`."""
