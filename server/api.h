/* api.h: the API server's routes: /metrics, /healthz, /readyz and the /v1/
 * JSON API (docs/api.md; the OpenAPI document is GET /v1/openapi.json). */
#ifndef SL_API_H
#define SL_API_H

#include <stddef.h>

#include "http.h"

/* Scope value of routes that need a valid credential but no scope. */
#define SL_ROUTE_AUTH 0x100u

extern const sl_route sl_api_routes[];
extern const size_t sl_api_nroutes;

#endif
