/* fuzz/pipeline.c: the pipeline loader (scheduler/pipeline.c and
 * lib/yamldoc.c) on any YAML bytes, as a pipeline file could hold. */
#include "fuzz.h"

#include "pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = sl_xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    sl_yerrors errors = SL_YERRORS_INIT;
    sl_pipeline *p = sl_pipeline_parse("fuzz.yaml", text, size, NULL, &errors);
    FUZZ_ASSERT((p != NULL) == (errors.n == 0), "pipeline %p with %zu errors", (void *)p, errors.n);
    sl_pipeline_free(p);
    sl_yerrors_free(&errors);
    free(text);
    return 0;
}
