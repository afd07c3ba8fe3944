/*
 * fleetwire_handler.h: the C ABI of a native route for the Python package `fleetwire`.
 *
 * A native route runs on the engine's IO threads for every DATA message of one service:
 * its messages never enter Python. Write the handler in C, Rust (`extern "C"`, with
 * #[repr(C)] copies of these structs), Zig or anything with a C ABI; build a shared
 * library; load it and register the function by address:
 *
 *     lib = ctypes.CDLL("./libmyroute.so")
 *     addr = ctypes.cast(lib.my_handler, ctypes.c_void_p).value
 *     counter = engine.route_c(service, addr, user_pointer_or_0)
 *
 * Rules:
 * - The handler runs inside an IO thread's event loop: keep it short, never block, never
 *   call into Python. With io_threads > 1 it may run on several threads at once.
 * - `msg`, its payload and `reply` are valid only during the call: copy what you keep.
 * - `send(reply, ...)` queues a message back on the connection `msg` arrived on (copied;
 *   written after the handler returns, ahead of Python's queued sends). Any number of
 *   calls.
 * - The library and `user` must stay valid while the route is registered (until
 *   engine.unroute(service) and the engine's next round, or engine.close()).
 */
#ifndef FLEETWIRE_HANDLER_H
#define FLEETWIRE_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One DATA message, decompressed and validated (spec §5.1, §7.4). */
typedef struct fw_message {
    uint64_t conn;          /* the connection id, as in Python's Message.conn */
    uint16_t source;        /* the source node (spec §7.4) */
    uint16_t node;          /* route: destination node */
    uint8_t service;        /* route: service */
    uint8_t channel;        /* route: channel */
    uint8_t never_compress; /* 1: the sender marked it secret (N = 1) */
    uint8_t reserved;
    const uint8_t *payload;
    size_t len;
} fw_message;

/* Queues a message back on the connection the handled message came from. */
typedef void (*fw_reply_fn)(void *reply, uint16_t node, uint8_t service, uint8_t channel,
                            const uint8_t *payload, size_t len);

/* The handler: `user` as registered, the message, and the reply context for `send`. */
typedef void (*fw_handler_fn)(void *user, const fw_message *msg, void *reply,
                              fw_reply_fn send);

#ifdef __cplusplus
}
#endif

#endif /* FLEETWIRE_HANDLER_H */
