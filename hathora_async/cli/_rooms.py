"""``hathora-async rooms ...``: the RoomsV2 operations."""

from __future__ import annotations

import attrs

from ..models import (
    ConnectionInfoV2,
    Room,
    RoomConnectionData,
    RoomReadyStatus,
    RoomWithoutAllocations,
)
from ._context import Context

__all__ = ["create_room", "room_info", "connection_info", "list_rooms", "destroy_room"]


async def create_room(ctx: Context) -> int:
    args = ctx.args
    ctx.ledger.kind = "room"
    room = await ctx.client.rooms.create_room(
        args.region, room_config=args.config, room_id=args.room_id
    )
    ctx.ledger.add(room.room_id)
    if args.wait:
        active = await ctx.client.rooms.wait_for_room(
            room.room_id, timeout=args.timeout, poll_interval=args.poll_interval
        )
        # Still CreateRoom's answer, as it reads once the room is active.
        room = attrs.evolve(
            room,
            status=RoomReadyStatus.ACTIVE,
            exposed_port=active.exposed_port,
            additional_exposed_ports=active.additional_exposed_ports,
        )
    ctx.show(room, RoomConnectionData)
    return 0


async def room_info(ctx: Context) -> int:
    ctx.show(await ctx.client.rooms.get_room_info(ctx.args.room_id), Room)
    return 0


async def connection_info(ctx: Context) -> int:
    ctx.show(await ctx.client.rooms.get_connection_info(ctx.args.room_id), ConnectionInfoV2)
    return 0


async def list_rooms(ctx: Context) -> int:
    rooms = ctx.client.rooms
    read = (
        rooms.get_inactive_rooms_for_process
        if ctx.args.inactive
        else rooms.get_active_rooms_for_process
    )
    ctx.show(await read(ctx.args.process_id), RoomWithoutAllocations)
    return 0


async def destroy_room(ctx: Context) -> int:
    await ctx.client.rooms.destroy_room(ctx.args.room_id)
    ctx.done(f"destroyed room {ctx.args.room_id}")
    return 0
