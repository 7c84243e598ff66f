/* fuzz/envelope.c: the wire envelope decoder (lib/envelope.c) on any bytes,
 * as a producer could XADD them, and what the worker does next with a
 * decoded job: args to JSON for the job row (linear in size, accepted by
 * the JSON parser), and the envelope of its next attempt. */
#include "fuzz.h"

#include "envelope.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_job job;
    sl_err err;
    if (sl_envelope_decode((const char *)data, size, &job, &err) < 0) {
        FUZZ_ASSERT(err.code == SL_EDECODE && err.msg[0], "code %d", err.code);
        return 0;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    FUZZ_ASSERT(msgpack_unpack_next(&up, job.args, job.args_len, &off) == MSGPACK_UNPACK_SUCCESS,
                "decoded args do not unpack");
    sl_buf json = SL_BUF_INIT;
    FUZZ_ASSERT(sl_json_from_msgpack(&up.data, &json, &err) == 0, "args refused as JSON: %s", err.msg);
    FUZZ_ASSERT(json.len <= 6 * job.args_len + 32, "%zu bytes of JSON from %zu of args", json.len,
                job.args_len);
    FUZZ_ASSERT(sl_json_check(json.data, json.len, &err) == 0, "args JSON does not parse: %s", err.msg);

    /* The next attempt's envelope decodes to the same job. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_job next = job;
    next.attempt = job.attempt < INT64_MAX ? job.attempt + 1 : job.attempt;
    FUZZ_ASSERT(sl_envelope_encode(&next, &sb, &err) == 0, "re-encoding refused: %s", err.msg);
    sl_job again;
    FUZZ_ASSERT(sl_envelope_decode(sb.data, sb.size, &again, &err) == 0, "re-decoding refused: %s", err.msg);
    FUZZ_ASSERT(strcmp(again.id, job.id) == 0 && again.args_len == job.args_len &&
                memcmp(again.args, job.args, job.args_len) == 0, "round trip changed the job");
    sl_job_clear(&again);
    msgpack_sbuffer_destroy(&sb);
    sl_buf_free(&json);
    msgpack_unpacked_destroy(&up);
    sl_job_clear(&job);
    return 0;
}
