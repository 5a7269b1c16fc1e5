/* Oxidase engine C ABI. Every entry point catches panics; failures return a non-zero
 * status and, where an out_message is given, a message to free with oxidase_free_message. */
#ifndef OXIDASE_H
#define OXIDASE_H

#include <stddef.h>
#include <stdint.h>

#define OXIDASE_ABI_VERSION 1

/* Status codes. */
#define OX_OK 0
#define OX_ERR_INVALID_REQUEST 1   /* inconsistent or malformed request */
#define OX_ERR_BAD_IR 2            /* bitcode does not parse, entry not found */
#define OX_ERR_UNSUPPORTED 3       /* a construct the engine cannot differentiate */
#define OX_ERR_INTERNAL 4          /* engine bug: verifier failure, panic */
#define OX_ERR_JIT 5               /* JIT compilation or symbol resolution failed */

/* Mode. */
#define OX_MODE_FORWARD 0
#define OX_MODE_REVERSE 1

/* How a Julia argument is passed in the specsig calling convention. */
#define OX_PASS_GHOST 0      /* no LLVM parameter (singleton types, e.g. the function itself) */
#define OX_PASS_VALUE 1      /* one LLVM parameter holding the bits (Float64, Int, Bool...) */

/* Activity of an argument or of the return. */
#define OX_CONST 0
#define OX_ACTIVE 1          /* reverse: adjoint returned; forward: not allowed */
#define OX_DUPLICATED 2      /* forward: tangent given; return: tangent wanted */

/* Type tree entry kinds: what the bytes at an offset of the argument hold. */
#define OX_TT_FLOAT64 0
#define OX_TT_FLOAT32 1
#define OX_TT_INTEGER 2
#define OX_TT_POINTER 3

typedef struct OxTypeEntry {
    uint64_t offset;
    uint32_t kind;
} OxTypeEntry;

typedef struct OxArg {
    uint32_t passing;              /* OX_PASS_* */
    uint32_t activity;             /* OX_CONST, OX_ACTIVE, OX_DUPLICATED */
    const OxTypeEntry *type_tree;  /* may be NULL when type_tree_len is 0 */
    size_t type_tree_len;
} OxArg;

typedef struct OxRequest {
    const char *entry;      /* name of the function to differentiate in the module */
    uint32_t mode;          /* OX_MODE_* */
    uint32_t width;         /* tangents (forward) or cotangents (reverse) per value; >= 1 */
    const OxArg *args;      /* one per Julia argument, in order */
    size_t nargs;
    uint32_t ret_activity;  /* OX_CONST, OX_ACTIVE (reverse) or OX_DUPLICATED (forward) */
} OxRequest;

/* The compiled derivative. For argument i (non-ghost):
 *   args[i]    points at the primal value's bytes;
 *   shadows[i] forward, OX_DUPLICATED: points at `width` tangents, read;
 *              reverse, OX_ACTIVE:     points at `width` adjoint slots, written;
 *              otherwise ignored (may be NULL).
 * ret  points where the primal return value is written (may be NULL: not written).
 * dret forward: `width` tangent slots of the return, written (when ret_activity is
 *      OX_DUPLICATED); reverse: `width` seeds of the return's adjoint, read (when
 *      ret_activity is OX_ACTIVE).
 * Returns 0, or a code >= 100 when the derivative is not available at this input (the
 * outputs are then meaningless; oxidase_status_message says why). Julia exceptions
 * raised by the differentiated code propagate as in Julia. */
typedef int32_t (*OxDerivativeFn)(void *const *args, void *const *shadows, void *ret, void *dret);

/* Version string of the engine (static, do not free). */
const char *oxidase_version(void);

/* Compiles (or finds in the cache) the derivative of `req->entry` in the given LLVM
 * bitcode. On success stores the function pointer in *out_fn and returns OX_OK. On
 * failure returns a status and, if out_message is not NULL, a message to free. */
int32_t oxidase_compile(const uint8_t *bitcode, size_t bitcode_len, const OxRequest *req,
                        OxDerivativeFn *out_fn, char **out_message);

/* Frees a message returned by the engine. NULL is ignored. */
void oxidase_free_message(char *message);

/* The message of a status >= 100 returned by a compiled derivative, NULL for other
 * codes. Static: do not free. */
const char *oxidase_status_message(int32_t status);

/* Number of derivatives compiled so far (cache misses); for tests of the cache. */
uint64_t oxidase_compile_count(void);

#endif
