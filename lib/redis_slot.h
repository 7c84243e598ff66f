/* redis_slot.h: which Redis Cluster slot a command belongs to.
 *
 * Redis Cluster splits the key space into 16384 slots: a key's slot is
 * CRC16(key) mod 16384, where only the part between the first '{' and the
 * next '}' is hashed when that part is not empty (the hash tag).  sluice
 * names every key of queue Q `sluice:{Q}:…`, so a queue lives in one slot.
 *
 * Commands do not say where their keys are: a small table, covering every
 * command sluice sends, gives the key positions (the first argument for
 * most; after STREAMS for XREAD/XREADGROUP; numkeys for EVAL/EVALSHA; the
 * second for XGROUP/XINFO subcommands; none for PING, CONFIG, SCAN, MULTI,
 * EXEC, …).  A command missing from the table is taken to have its key
 * first, which is true of nearly all Redis commands; a redirection corrects
 * the rare exception. */
#ifndef SL_REDIS_SLOT_H
#define SL_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SL_REDIS_SLOTS 16384

/* CRC16-CCITT (XModem: polynomial 0x1021, initial value 0), the checksum
 * Redis Cluster hashes keys with. */
uint16_t sl_crc16(const char *buf, size_t len);

/* The slot of a key, honouring a hash tag. */
int sl_redis_keyslot(const char *key, size_t len);

/* The slot of a command: -1 (and err untouched) when it has no key, the
 * slot when every key is in the same one, or -2 with err (SL_EINVAL)
 * naming the command, two of its keys and their slots when they span
 * several (Redis would refuse it with CROSSSLOT; sluice never sends it).
 * lens may be NULL (strlen of each argument). */
int sl_redis_command_slot(int argc, const char *const *argv, const size_t *lens, sl_err *err);

#endif
