// A C canister (wasm32) for the execution tests: a Candid counter plus a text echo.
// Built from source by icp.build.compile_c with clang (via zig cc, from PyPI).
#include <stdint.h>

#define IC0(name) __attribute__((import_module("ic0"), import_name(#name)))
IC0(msg_arg_data_size) uint32_t msg_arg_data_size(void);
IC0(msg_arg_data_copy) void msg_arg_data_copy(uint32_t dst, uint32_t off, uint32_t len);
IC0(msg_reply_data_append) void msg_reply_data_append(uint32_t src, uint32_t len);
IC0(msg_reply) void msg_reply(void);
IC0(msg_caller_size) uint32_t msg_caller_size(void);
IC0(msg_caller_copy) void msg_caller_copy(uint32_t dst, uint32_t off, uint32_t len);
IC0(trap) void ic0_trap(uint32_t src, uint32_t len);

static uint64_t counter;
static uint8_t buf[4096];

// Candid "DIDL" header for one nat64 value, then the value little-endian.
static void reply_nat64(uint64_t v) {
    static const uint8_t header[] = {'D', 'I', 'D', 'L', 0, 1, 0x78};
    for (int i = 0; i < 7; i++) buf[i] = header[i];
    for (int i = 0; i < 8; i++) buf[7 + i] = (uint8_t)(v >> (8 * i));
    msg_reply_data_append((uint32_t)(uintptr_t)buf, 15);
    msg_reply();
}

__attribute__((export_name("canister_init"))) void init(void) { counter = 41; }

__attribute__((export_name("canister_update inc"))) void inc(void) { reply_nat64(++counter); }

__attribute__((export_name("canister_query get"))) void get(void) { reply_nat64(counter); }

// Reply with the raw argument bytes followed by the caller's principal bytes.
__attribute__((export_name("canister_update echo_caller"))) void echo_caller(void) {
    uint32_t n = msg_arg_data_size();
    uint32_t c = msg_caller_size();
    if (n + c > sizeof buf) {
        static const char msg[] = "argument too large";
        ic0_trap((uint32_t)(uintptr_t)msg, sizeof msg - 1);
    }
    msg_arg_data_copy((uint32_t)(uintptr_t)buf, 0, n);
    msg_caller_copy((uint32_t)(uintptr_t)(buf + n), 0, c);
    msg_reply_data_append((uint32_t)(uintptr_t)buf, n + c);
    msg_reply();
}

// Increment, then trap: the increment must be rolled back.
__attribute__((export_name("canister_update inc_then_trap"))) void inc_then_trap(void) {
    counter++;
    static const char msg[] = "deliberate trap";
    ic0_trap((uint32_t)(uintptr_t)msg, sizeof msg - 1);
}
