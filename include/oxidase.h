/* Oxidase engine C ABI. Generated from rust-src/ffi.rs by cbindgen; do not edit.
 *
 * Every entry point catches panics; failures return a non-zero status and, from
 * oxidase_compile, a message to free with oxidase_free_message. No bitcode passed
 * to oxidase_compile can crash or abort the caller: see oxidase_compile. */

#ifndef OXIDASE_H
#define OXIDASE_H



#include <stddef.h>
#include <stdint.h>

// Version of this ABI; changes when a struct or signature below changes.
#define OXIDASE_ABI_VERSION 1

// Success.
#define OX_OK 0

// The request is malformed or inconsistent with the IR, or a required pointer
// argument is NULL.
#define OX_ERR_INVALID_REQUEST 1

// The bitcode does not parse or verify (or LLVM's reader crashed on it, in the separate
// process that reads it first), or the entry function is missing.
#define OX_ERR_BAD_IR 2

// A construct the engine cannot differentiate.
#define OX_ERR_UNSUPPORTED 3

// An engine bug: verifier failure, panic, LLVM fatal error (after which new compiles
// are refused with this status: LLVM's state is unknown).
#define OX_ERR_INTERNAL 4

// JIT compilation or symbol resolution failed.
#define OX_ERR_JIT 5

// Compiled derivatives return codes from here on when the derivative is not
// available at their input; `oxidase_status_message` says why.
#define OX_STATUS_DIAGNOSTIC 100

// Derivative flag: the derivative calls into the Julia runtime and may allocate, so
// the caller must keep the garbage collector from running during the call.
#define OX_FLAG_PAUSE_GC 1

// Derivative flag: a call may take heap buffers and be left by a throw (a `longjmp` out
// of a function its bitcode calls, such as Julia's `jl_throw`), so the caller brackets
// it with `oxidase_buffers_mark` and, when it does not return,
// `oxidase_buffers_release`. A derivative that returns has freed everything it took.
#define OX_FLAG_RELEASE_ON_THROW 2

// Derivative flag: the derivative calls the runtime hooks registered with
// `oxidase_set_runtime_hooks` (splatting a differentiated array into a call), which
// keep per-call records: the caller opens a record frame for the hooks around the call
// and closes it after, whether the call returns or throws.
#define OX_FLAG_RUNTIME_HOOKS 4

// Derivative flag: the derivative holds a construct it cannot differentiate on a path
// some inputs take, refused where it is reached, in a function that calls code Julia
// dispatches as it runs. The caller may try a derivative of code compiled for narrower
// types (calls made directly), which may have none.
#define OX_FLAG_REFUSED_WHEN_REACHED 8

// Request flag: the caller does not read the primal result, so the derivative need not
// write `*ret` (a float result only), and the work computing it can be dropped when
// nothing else needs it (`Reverse` without the primal, `DuplicatedNoNeed` returns).
#define OX_REQ_PRIMAL_UNUSED 1

// Request flag: the bitcode was just written by LLVM's own bitcode writer in this
// process (the Julia package: Julia's LLVM writes what `jl_create_native` made), so
// it is read here without first being read in a child process. That check costs a
// fork per compile, whose price grows with the caller's memory (measured 12 ms in a
// fresh Julia session, 200 ms with 2.3 GiB resident); bytes from anywhere else must
// not carry this flag, or the guarantee of `oxidase_compile` does not hold for them.
#define OX_REQ_WRITER_BITCODE 2

// Forward mode: tangents flow with the primal.
#define OX_MODE_FORWARD 0

// Reverse mode: adjoints flow back from the return.
#define OX_MODE_REVERSE 1

// No LLVM parameter (singleton types, e.g. the function itself).
#define OX_PASS_GHOST 0

// The argument's bytes are at `args[i]`: one LLVM parameter holding them (Float64,
// Int, Bool...), or a pointer to them (structs and tuples).
#define OX_PASS_VALUE 1

// A Julia object reference (an `Array`): `args[i]` points at a slot holding the
// `jl_value_t*`; for a `OX_DUPLICATED` argument `shadows[i]` points at a slot holding
// the shadow object's (same type and shape), read in forward mode and accumulated
// into in reverse mode.
#define OX_PASS_BOXED 2

// No derivative.
#define OX_CONST 0

// Reverse mode: the adjoint is returned (argument) or seeded (return).
#define OX_ACTIVE 1

// Forward mode: a tangent is given (argument) or wanted (return).
#define OX_DUPLICATED 2

// Type tree: `Float64` data at this offset.
#define OX_TT_FLOAT64 0

// Type tree: `Float32` data.
#define OX_TT_FLOAT32 1

// Type tree: an integer (never differentiated).
#define OX_TT_INTEGER 2

// Type tree: a pointer to memory holding no derivative.
#define OX_TT_POINTER 3

// Type tree: a pointer to a heap object, whose fields follow at the next depth.
#define OX_TT_OBJECT 4

// Type tree: a pointer to a Julia `Array`, one element's fields following at the next
// depth.
#define OX_TT_ARRAY 5

// Type tree: bits without derivative whatever they hold, floats included (a field of a
// type the user declared inactive, `EnzymeRules.inactive_type`, stored inline): the
// derivative reads them as constants and never reads the shadow's.
#define OX_TT_INACTIVE 6

// Type tree: a pointer to an object laid out as the object whose field this is (a
// list's next node, a tree's child), or to `nothing`.
#define OX_TT_SELF 7

// What the bytes at an offset of an argument hold: one node of the argument's layout
// (`request::Layout`), the tree sent in preorder. An entry at depth 0 is at an offset
// of the argument; an entry at depth d + 1 is at an offset of the memory the nearest
// `OX_TT_OBJECT` or `OX_TT_ARRAY` entry before it at depth d points to (for an array,
// an offset into one element).
typedef struct OxTypeEntry {
  // Byte offset in the argument, the object or the array element.
  uint64_t offset;
  // `OX_TT_*`.
  uint32_t kind;
  // Depth in the tree (0: the argument's own bytes).
  uint32_t depth;
} OxTypeEntry;

// One Julia argument (the function itself first).
typedef struct OxArg {
  // `OX_PASS_*`.
  uint32_t passing;
  // `OX_CONST`, `OX_ACTIVE` or `OX_DUPLICATED`.
  uint32_t activity;
  // Type tree entries; may be NULL when `type_tree_len` is 0.
  const struct OxTypeEntry *type_tree;
  // Number of type tree entries.
  size_t type_tree_len;
} OxArg;

// A derivative request.
typedef struct OxRequest {
  // Name of the function to differentiate in the module.
  const char *entry;
  // `OX_MODE_*`.
  uint32_t mode;
  // Tangents (forward) or cotangents (reverse) per value; 1 for now.
  uint32_t width;
  // One per Julia argument, in order.
  const struct OxArg *args;
  // Number of arguments.
  size_t nargs;
  // `OX_CONST`, `OX_ACTIVE` (reverse) or `OX_DUPLICATED` (forward).
  uint32_t ret_activity;
  // `OX_REQ_*` bits.
  uint32_t flags;
} OxRequest;

// The compiled derivative. For argument i (non-ghost):
// - `args[i]` points at the primal value's bytes;
// - `shadows[i]`, forward and `OX_DUPLICATED`: points at `width` tangents, read;
//   reverse and `OX_ACTIVE`: points at `width` adjoint slots, written; otherwise
//   ignored (may be NULL).
//
// `ret` points where the primal return value is written. `dret`, forward: `width`
// tangent slots of the return, written (when the return is `OX_DUPLICATED`); reverse:
// `width` seeds of the return's adjoint, read (when the return is `OX_ACTIVE`).
//
// Returns `OX_OK`, or a code from `OX_STATUS_DIAGNOSTIC` on when the derivative is not
// available at this input (the outputs are then meaningless; `oxidase_status_message`
// says why). Julia exceptions raised by the differentiated code propagate as in Julia.
typedef int32_t (*OxDerivativeFn)(void *const *args, void *const *shadows, void *ret, void *dret);

// Where a derivative compiled in two tiers (`oxidase_derivative_tier`) announces its
// optimized code: `optimized` is zero until that code is ready, then its address,
// which takes the same arguments as the quick code and is called with the flags in
// `flags` (`OX_FLAG_*`, written before `optimized`). Read it with an acquiring load
// (a plain load on x86-64).
typedef struct OxTierSlot {
  // Address of the optimized derivative, or 0.
  uint64_t optimized;
  // Its `OX_FLAG_*` bits, valid once `optimized` is not 0.
  uint32_t flags;
} OxTierSlot;

// 64-bit words the engine allocated (addresses, or pairs of a function and a number),
// freed with `oxidase_free_words`.
typedef struct OxWords {
  // The words; NULL when `len` is 0.
  uint64_t *data;
  // How many.
  size_t len;
} OxWords;

// Patterns `oxidase_julia_names_called` looks for in the called functions' names:
// each a NUL-terminated string of patterns separated by newlines (empty, or NULL, for
// none).
typedef struct OxNamePatterns {
  // Prefixes of the functions whose calls are not followed.
  const char *stop_prefixes;
  // Substrings looked for.
  const char *substrings;
  // Prefixes looked for.
  const char *prefixes;
  // The prefix of the functions whose float signature is reported (one pattern).
  const char *float_prefix;
} OxNamePatterns;

// Version string of the engine (static: do not free).
const char *oxidase_version(void);

// 1 when the engine knows the derivative of Base's elementary function `name` (`sin`,
// `atan`) of `arity` floats, else 0 (also for a NULL or non-UTF-8 `name`). The
// extraction hands the engine such a function as a declaration carrying the address of
// Julia's machine code for it (the `oxidase-native` attribute), without its body: the
// engine calls that code.
//
// # Safety
// `name` must be NULL or a NUL-terminated string.
uint32_t oxidase_is_base_math_function(const char *name, uint32_t arity);

// Compiles (or finds in the cache) the derivative of `req->entry` in the given LLVM
// bitcode. On success stores the function pointer in `*out_fn` and returns `OX_OK`. On
// failure returns a status and stores in `*out_message` a message to free with
// `oxidase_free_message`. Every pointer is required: with `out_message` NULL nothing is
// compiled and the status is `OX_ERR_INVALID_REQUEST` (a failure's reason would be lost);
// with another one NULL, the status is the same and the message says which.
//
// Whatever the bytes, the call returns. LLVM's bitcode reader is not hardened against
// corrupt input (it can crash, abort or exhaust memory), so the bytes are first read
// and verified by LLVM 19 in a child process (`fork`, with a timeout: 10 s plus 1 s per
// MB, and a memory cap); only bytes that read and verify there are parsed in the
// caller's process, so the reader cannot fault here. A child that crashes, hits an
// LLVM fatal error or runs out of time or memory makes this call return
// `OX_ERR_BAD_IR`. Cost: one fork plus one extra read per cache miss (proportional to
// the caller's memory; see docs/how-it-works.md). An LLVM fatal error later in the
// compile returns `OX_ERR_INTERNAL`; the thread that hit it is parked and leaked, and
// every later cache miss returns `OX_ERR_INTERNAL` (cached derivatives keep working).
// Not covered: a signal raised by the engine or LLVM after the bytes are read (an
// engine bug on valid IR), or a fork the system refuses (`OX_ERR_INTERNAL`).
// `OXIDASE_UNCHECKED_BITCODE=1` in the environment skips the child, and with it this
// guarantee.
//
// # Safety
// `bitcode` must be valid for `bitcode_len` bytes, `req` must point to a valid request
// whose arrays are valid for their lengths, `out_fn` and `out_message` must be writable.
int32_t oxidase_compile(const uint8_t *bitcode, size_t bitcode_len, const struct OxRequest *req, OxDerivativeFn *out_fn, char **out_message);

// Frees a message returned by the engine. NULL is ignored.
//
// # Safety
// `message` must come from the engine (or be null) and be freed once.
void oxidase_free_message(char *message);

// The `OX_FLAG_*` flags of a derivative returned by `oxidase_compile`; `u32::MAX` for a
// pointer the engine did not return.
uint32_t oxidase_derivative_flags(OxDerivativeFn derivative);

// Registers the caller's runtime hooks (NULL: none), which derivatives of code that
// splats differentiated arrays into calls (`f(x...)`) call back; see
// `OX_FLAG_RUNTIME_HOOKS`. Without them such code is refused. `splat_call`:
// `void *(int32_t mode, void **args, void **shadows, int32_t n, int32_t width,
// void **out, int64_t *handle)`; `splat_reverse`: `void (int64_t handle)`. Their
// contract is in the engine's `runtime::hooks`. Derivatives compiled before a change
// keep calling the hooks they were compiled with.
void oxidase_set_runtime_hooks(const void *splat_call, const void *splat_reverse);

// Registers the caller's stop hook (NULL: none): `void (int32_t status)`, which raises
// the caller's error for a diagnostic status and does not return (a `longjmp`, as
// Julia's exceptions are). Derivatives that meet a construct refused where it is
// reached call it there, flagged `OX_FLAG_RUNTIME_HOOKS`; without it they record the
// status, return it, and may have run on past the construct. Derivatives compiled
// before a change keep the hook they were compiled with.
void oxidase_set_stop_hook(const void *stop);

// Registers the caller's custom-rule hooks (NULL: none), which derivatives of code
// calling functions with a user-defined rule (named `oxidase.rule.<site>.…` in the
// bitcode) call back; see `OX_FLAG_RUNTIME_HOOKS`. Without them such calls are refused.
// `rule_call`: `void (int32_t mode, int64_t site, void **args, void **shadows, int32_t
// n, int32_t width, int32_t flags, void *ret, void **tangents, int64_t *handle)`;
// `rule_reverse`: `void (int64_t handle, void **dret, void **dargs)`. Their contract is
// in the engine's `runtime::hooks`.
void oxidase_set_rule_hooks(const void *rule_call, const void *rule_reverse);

// Declares the Julia function object at `function` inactive when called through
// dynamic dispatch (`jl_apply_generic`): printing and logging functions, whose calls
// show what they are handed and return nothing a result depends on. A derivative then
// treats such a call, and a value boxed only for it, as having no derivative. Applies
// to derivatives compiled afterwards; NULL is ignored.
void oxidase_declare_inactive_function(const void *function);

// Verbose errors: when `on` is not 0, the message of a failed `oxidase_compile` ends
// with the LLVM IR of the function as the engine received it (inlined and cleaned), for
// bug reports. Returns the previous setting (0 or 1).
uint32_t oxidase_set_verbose(uint32_t on);

// Lets go of a derivative `oxidase_compile` returned: every successful compile call
// (a cache hit too) makes the caller one holder of the derivative, and the last holder's
// release frees its code, which must not be called afterwards (nor be running on
// another thread). Returns `OX_OK`, `OX_ERR_INVALID_REQUEST` for a pointer the engine
// does not hold (never returned, or released by all its holders), or an error status
// if the JIT could not free it (the code then stays).
int32_t oxidase_release_derivative(OxDerivativeFn derivative);

// The tier slot of a derivative `oxidase_compile` returned: a large derivative is first
// compiled quickly, without optimization, and returned at once, while a thread of the
// engine compiles it optimized; the slot says when that code is ready (`OxTierSlot`).
// The caller should then call it instead (both compute the same derivative; each call
// runs in one of them) and keep `derivative` as the handle it releases. NULL when
// `derivative` is not in two tiers (already optimized) or unknown. The slot is valid
// until the derivative's last holder releases it.
const struct OxTierSlot *oxidase_derivative_tier(OxDerivativeFn derivative);

// Blocks until the optimized code of `derivative` (compiled in two tiers) is ready, or
// could not be made; returns at once for any other derivative. Then its tier slot
// says which.
void oxidase_wait_tier(OxDerivativeFn derivative);

// Blocks until no engine thread is optimizing a derivative (for benchmarks and tests
// that measure or check the optimized code; the process's exit waits too).
void oxidase_wait_optimized(void);

// Number of derivatives whose optimized tier could not be made (the quick code stays
// in use); for tests.
uint64_t oxidase_tier_failures(void);

// Number of derivatives whose code is in the JIT now (compiled, not yet released by
// all their holders); for tests of the cache's bound.
uint64_t oxidase_live_derivatives(void);

// Number of derivatives compiled so far (cache misses); for tests of the cache.
uint64_t oxidase_compile_count(void);

// The steps of the engine's compiles so far in the process (its cache misses) and
// their wall-clock times added up, one `step seconds` line each, in the order they
// first ran: `parse`, the pipeline's stages (`ingest`, `rewrite`, ..., `optimize`,
// `clean-up`) and `jit`; for benchmarks of compile latency, which take the difference
// over a call. Empty before the first compile. Free it with `oxidase_free_message`;
// null if the engine failed to make the text.
char *oxidase_compile_timings(void);

// The message of a status code returned by a compiled derivative (codes from 100 on:
// the derivative was not available at that input); a code from 100 on that this
// process's engine never issued gets a message saying so. Null for codes below 100,
// which compiled derivatives do not return. The string lives as long as the process:
// do not free it.
const char *oxidase_status_message(int32_t status);

// This thread's mark of the heap buffers live derivatives hold, taken before calling a
// derivative flagged `OX_FLAG_RELEASE_ON_THROW`.
size_t oxidase_buffers_mark(void);

// Frees the buffers this thread's derivatives took since `mark` (from
// `oxidase_buffers_mark` before a call that was left by a non-local exit). Returns how
// many it freed.
//
// # Safety
// Must not be called while a derivative started after the mark is still running on
// this thread.
size_t oxidase_buffers_release(size_t mark);

// Frees words the engine returned. Empty words are ignored.
//
// # Safety
// `words` must come from the engine, unchanged, and be freed once.
void oxidase_free_words(struct OxWords words);

// Which of `patterns` the names of the functions `roots` may call hold: the functions
// `roots[0]` (the entry) and the other roots call, transitively, outside the blocks that
// end in `unreachable`, not following the calls of a function whose name starts with a
// stop prefix. Writes one byte per substring, then one per prefix, into `found` (1 when
// some called function's name holds it, else 0), and into `*float_functions` the pairs
// (function, LLVM type kind: 2 float, 3 double) of the called functions other than
// `roots[0]` whose name starts with the float prefix and that take and return floats of
// that type alone. Returns `OX_OK`, or a status with a message in `*out_message` to free
// with `oxidase_free_message`.
//
// # Safety
// `library` names Julia's LLVM library, already loaded; `roots` holds `n_roots` (at
// least 1) live functions of one of its modules, and the caller holds Julia's codegen
// lock; `patterns` is a valid pattern set; `found` is writable for
// as many bytes as there are substrings and prefixes; `float_functions` and
// `out_message` are writable.
int32_t oxidase_julia_names_called(const char *library, void *const *roots, size_t n_roots, const struct OxNamePatterns *patterns, uint8_t *found, struct OxWords *float_functions, char **out_message);

// Deletes the bodies of the functions of `module` that neither `root` nor a function
// whose name starts with one of `kept_prefixes` (separated by newlines) can reach through
// its instructions' operands (through at most four constant expressions), nor a global
// variable's initializer. Returns `OX_OK`, or a status with a message.
//
// # Safety
// `library` names Julia's LLVM library, already loaded; `module` is a live module of it
// and `root` one of its functions, and the caller holds Julia's codegen lock;
// `kept_prefixes` is NULL or NUL-terminated; `out_message` is writable.
int32_t oxidase_julia_drop_unreachable(const char *library, void *module, void *root, const char *kept_prefixes, char **out_message);

// Makes `function` a declaration: its body deleted, its metadata cleared, its linkage
// external. Returns `OX_OK`, or a status with a message.
//
// # Safety
// `library` names Julia's LLVM library, already loaded; `function` is a live function of
// one of its modules whose instructions nothing outside it uses, and the caller holds
// Julia's codegen lock; `out_message` is writable.
int32_t oxidase_julia_delete_body(const char *library, void *function, char **out_message);

// The literal addresses (`inttoptr` constants) among the operands of the calls of the
// function of `module` named `callee`, each once, into `*addresses` (none when the
// module has no such function). Returns `OX_OK`, or a status with a message.
//
// # Safety
// `library` names Julia's LLVM library, already loaded; `module` is a live module of
// it, and the caller holds Julia's codegen lock; `callee` is NUL-terminated;
// `addresses` and `out_message` are writable.
int32_t oxidase_julia_call_operand_addresses(const char *library, void *module, const char *callee, struct OxWords *addresses, char **out_message);

#endif  /* OXIDASE_H */
