/* api.h: the API server's routes: /metrics, /healthz, /readyz and the /v1/
 * JSON API (docs/api.md; the OpenAPI document is GET /v1/openapi.json). */
#ifndef SL_API_H
#define SL_API_H

#include <stddef.h>

#include "db.h"
#include "err.h"
#include "http.h"

/* Scope value of routes that need a valid credential but no scope. */
#define SL_ROUTE_AUTH 0x100u

/* The ids of the steps gate gate_id of run_id needs, as a PostgreSQL
 * array literal "{a,b}" (caller frees), from the run's pipeline
 * definition ("{}" when unknown); NULL with err if the database failed.
 * Shared with the web pages (web.h). */
char *sl_api_gate_needs(sl_db *db, const sl_config *cfg, const char *run_id, const char *gate_id, sl_err *err);

extern const sl_route sl_api_routes[];
extern const size_t sl_api_nroutes;

#endif
