/* Uses the engine through its C ABI alone, without Julia: reads bitcode produced by
 * llvm-as-19 from abi_test.ll, compiles the reverse and forward derivatives of
 * f(x, y) = x sin(y) + exp(x) / y, and checks them against the analytic gradient.
 * Also checks that garbage bitcode is an error, not a crash, that a missing out_message
 * is refused, and that diagnostic codes have messages. */
#include "oxidase.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static void check(const char *what, double got, double want) {
    if (fabs(got - want) > 1e-12 * fmax(1.0, fabs(want))) {
        printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
        failures++;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: abi_test file.bc\n"); return 2; }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) { perror(argv[1]); return 2; }
    static uint8_t bc[1 << 20];
    int status;
    size_t n = fread(bc, 1, sizeof bc, fp);
    fclose(fp);

    /* Diagnostic codes (100 on) always have a message, even one this process never
     * issued (none yet: nothing is compiled). Codes below 100 have none. */
    const char *unrecorded = oxidase_status_message(OX_STATUS_DIAGNOSTIC);
    if (unrecorded == NULL || strstr(unrecorded, "no message was recorded") == NULL) {
        printf("FAIL status message of %d: %s\n", OX_STATUS_DIAGNOSTIC, unrecorded ? unrecorded : "NULL");
        failures++;
    }
    if (oxidase_status_message(OX_ERR_BAD_IR) != NULL) { printf("FAIL status %d has a message\n", OX_ERR_BAD_IR); failures++; }

    OxTypeEntry f64 = {0, OX_TT_FLOAT64};
    OxArg rargs[2] = {{OX_PASS_VALUE, OX_ACTIVE, &f64, 1}, {OX_PASS_VALUE, OX_ACTIVE, &f64, 1}};
    OxRequest req = {"f", OX_MODE_REVERSE, 1, rargs, 2, OX_ACTIVE};
    OxDerivativeFn d = NULL;
    char *msg = NULL;
    if (oxidase_compile(bc, n, &req, &d, &msg) != OX_OK) { printf("FAIL compile: %s\n", msg); return 1; }

    double x = 0.7, y = 1.3, dx = 0, dy = 0, ret = 0, seed = 1.0;
    void *args[2] = {&x, &y}, *shadows[2] = {&dx, &dy};
    d(args, shadows, &ret, &seed);
    check("primal", ret, x * sin(y) + exp(x) / y);
    check("df/dx", dx, sin(y) + exp(x) / y);
    check("df/dy", dy, x * cos(y) - exp(x) / (y * y));

    OxArg fargs[2] = {{OX_PASS_VALUE, OX_DUPLICATED, &f64, 1}, {OX_PASS_VALUE, OX_CONST, &f64, 1}};
    OxRequest freq = {"f", OX_MODE_FORWARD, 1, fargs, 2, OX_DUPLICATED};
    if (oxidase_compile(bc, n, &freq, &d, &msg) != OX_OK) { printf("FAIL compile forward: %s\n", msg); return 1; }
    double tx = 1.0, tret = 0;
    void *fshadows[2] = {&tx, NULL};
    d(args, fshadows, &ret, &tret);
    check("forward df/dx", tret, sin(y) + exp(x) / y);

    /* out_message is required: without it the call is refused, *out_fn left alone. */
    OxDerivativeFn before = d;
    status = oxidase_compile(bc, n, &req, &d, NULL);
    if (status != OX_ERR_INVALID_REQUEST || d != before) { printf("FAIL out_message NULL gave status %d\n", status); failures++; }

    uint8_t junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (uint8_t)(i * 37 + 11);
    status = oxidase_compile(junk, sizeof junk, &req, &d, &msg);
    if (status != OX_ERR_BAD_IR) { printf("FAIL junk bitcode gave status %d\n", status); failures++; }
    oxidase_free_message(msg);

    OxRequest missing = {"no_such_function", OX_MODE_REVERSE, 1, rargs, 2, OX_ACTIVE};
    msg = NULL;
    status = oxidase_compile(bc, n, &missing, &d, &msg);
    if (status != OX_ERR_BAD_IR || msg == NULL) { printf("FAIL unknown entry gave status %d\n", status); failures++; }
    oxidase_free_message(msg);

    printf("%s (%s)\n", failures ? "C ABI test failed" : "C ABI test passed", oxidase_version());
    return failures ? 1 : 0;
}
