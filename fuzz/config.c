/* fuzz/config.c: the configuration loader (lib/config.c and the sections
 * registered with it: worker/config_worker.c, jobs/config_jobs.c,
 * scheduler/config_sched.c, lib/config_api.c) on any bytes, read from a memory
 * file as sl_config_load reads /etc/sluice/sluice.yaml. */
#include "fuzz.h"

#include "config.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "config_worker.h"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("sluice-fuzz.yaml", MFD_CLOEXEC);
    FUZZ_ASSERT(fd >= 0, "memfd_create failed");
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        FUZZ_ASSERT(w > 0, "write to memfd failed");
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sl_err err;
    sl_worker_config_register();
    sl_config_jobs_register();
    sl_sched_config_register();
    sl_api_config_register();
    sl_config *cfg = sl_config_load(path, &err);
    FUZZ_ASSERT(cfg != NULL || (err.code == SL_ECONFIG && err.msg[0]), "NULL without a message");
    sl_config_free(cfg);
    close(fd);
    return 0;
}
