/* keys.c: see keys.h. */
#include "keys.h"

#include <stdio.h>

void sl_queue_key(char buf[SL_KEY_MAX], const char *queue, const char *suffix)
{
    snprintf(buf, SL_KEY_MAX, "sluice:{%s}:%s", queue, suffix);
}
