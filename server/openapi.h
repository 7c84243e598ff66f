/* openapi.h: the OpenAPI 3 document of the API (server/openapi.json),
 * compiled in by cmake/embed_file.cmake and served as GET /v1/openapi.json. */
#ifndef SL_OPENAPI_H
#define SL_OPENAPI_H

#include <stddef.h>

extern const char sl_openapi_json[];    /* NUL-terminated */
extern const size_t sl_openapi_json_len; /* bytes, without the NUL */

#endif
