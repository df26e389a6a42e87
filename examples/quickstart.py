"""Create, list, inspect and stop processes in a few regions.

Runs against the real Hathora API when HATHORA_TOKEN and HATHORA_APP_ID are set,
and otherwise against an embedded fake Hathora on loopback, so it works offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from hathora_async import HathoraClient, HathoraError, ProcessStatus, ProcessV2, Region
from hathora_async.testing import FakeHathora

REGIONS = (Region.SEATTLE, Region.FRANKFURT, Region.SINGAPORE)


@contextlib.asynccontextmanager
async def open_client() -> AsyncIterator[HathoraClient]:
    if os.environ.get("HATHORA_TOKEN"):
        async with HathoraClient.from_env() as client:
            print(f"Using the real Hathora API at {client.base_url}")
            yield client
        return
    async with FakeHathora(boot_delay=0.3) as fake:
        print(f"HATHORA_TOKEN is not set: using an embedded fake Hathora at {fake.url}")
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
            yield client


def describe(process: ProcessV2) -> str:
    port = process.exposed_port
    where = f"{port.host}:{port.port}/{port.transport_type}" if port else "no port yet"
    return f"{process.process_id}  {process.region!s:<12} {process.status!s:<9} {where}"


async def main() -> None:
    async with open_client() as client:
        created = await asyncio.gather(
            *(client.processes.create_process(region) for region in REGIONS),
            return_exceptions=True,
        )
        processes = [p for p in created if isinstance(p, ProcessV2)]
        for region, outcome in zip(REGIONS, created, strict=True):
            if isinstance(outcome, HathoraError) and outcome.outcome_unknown:
                # The server may have made a (billed) process: look before creating again.
                print(f"create in {region} may have succeeded; check get_latest_processes")
            elif isinstance(outcome, BaseException):
                print(f"create in {region} failed: {outcome}")
        try:
            print("\nCreated:")
            for process in processes:
                print("  " + describe(process))

            await asyncio.sleep(0.5)
            print("\nLatest starting or running processes in these regions:")
            latest = await client.processes.get_latest_processes(
                status=[ProcessStatus.STARTING, ProcessStatus.RUNNING], region=REGIONS
            )
            for process in latest:
                print("  " + describe(process))

            if processes:
                info = await client.processes.get_process_info_with_http_info(
                    processes[0].process_id
                )
                print(f"\nGetProcessInfo -> HTTP {info.status_code}: {describe(info.data)}")
        finally:
            # Processes are billed: stop every one this example created, even on error.
            for process in processes:
                try:
                    await client.processes.stop_process(process.process_id)
                except HathoraError as exc:
                    print(f"stop {process.process_id} failed: {exc}")
        print(f"\nStopped {len(processes)} processes.")


if __name__ == "__main__":
    asyncio.run(main())
