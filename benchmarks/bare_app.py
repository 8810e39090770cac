"""The baseline for the ingest benchmark: a FastAPI endpoint that parses the same webhook body and
stores nothing. Run under the same uvicorn settings as `connector serve`."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/{connection_id}", status_code=202)
async def receive(connection_id: str, request: Request) -> JSONResponse:
    document = json.loads(await request.body())
    return JSONResponse({"delivery_id": str(document.get("event_id")), "duplicate": False}, status_code=202)
