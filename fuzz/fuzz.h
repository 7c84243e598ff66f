/* fuzz.h: what the libFuzzer harnesses of fuzz/ share.
 *
 * Each fuzz/<target>.c defines LLVMFuzzerTestOneInput for one parser of
 * untrusted input (docs/fuzzing.md).  A harness checks the parser's own
 * promises beyond "does not crash" (a value that decodes encodes again, a
 * round trip is stable) and calls FUZZ_ASSERT, which aborts: libFuzzer
 * then saves the input as a crash. */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define FUZZ_ASSERT(cond, ...)                                                   \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", __FILE__,     \
                    __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* The input as a NUL-terminated string (for parsers that take one); an
 * input holding a NUL is cut there, as a C caller would see it.  Caller
 * frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    return sl_xstrndup((const char *)data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
