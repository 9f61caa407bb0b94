"""The baseline web app for benchmark 5: what `POST /pets` does, with none of the framework.

The same pydantic body, one HINCRBY for the id, one HSET for the pet, and two arq jobs, served by
Litestar on uvicorn with the same settings as `workbench start`.

    python -m bench.bare_app --redis URL --port PORT
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from arq.connections import ArqRedis, RedisSettings, create_pool
from litestar import Litestar, Response, post
from pydantic import BaseModel, ConfigDict, Field


class CreatePetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    species: Literal["dog", "cat", "bird", "other"]
    ageMonths: int = Field(ge=0, le=600)


def create_app(redis_url: str) -> Litestar:
    pool: dict[str, ArqRedis] = {}

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool["arq"] = await create_pool(RedisSettings.from_dsn(redis_url))
        yield
        await pool["arq"].aclose()

    @post("/pets", status_code=201)
    async def create_pet(data: CreatePetBody) -> Response[dict[str, object]]:
        redis = pool["arq"]
        now = int(time.time() * 1000)
        pet_id = str(await redis.hincrby("bare:pets-meta", "lastId", 1))
        pet = {"id": pet_id, "name": data.name.strip(), "species": data.species, "ageMonths": data.ageMonths,
               "status": "new", "createdAt": now, "updatedAt": now}  # fmt: skip
        await redis.hset("bare:pets", pet_id, json.dumps(pet))
        await redis.enqueue_job("pet_created", {"petId": pet_id, "event": "pet.created"})
        await redis.enqueue_job("feeding_reminder", {"petId": pet_id, "enqueuedAt": now})
        return Response(pet, status_code=201)

    return Litestar(route_handlers=[create_pet], lifespan=[lifespan], debug=False, logging_config=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        create_app(args.redis),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
