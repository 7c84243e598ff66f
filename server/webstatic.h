/* webstatic.h: the web pages' stylesheet and script, compiled in from
 * server/static/ by cmake/embed_file.cmake (served under /static/). */
#ifndef SL_WEBSTATIC_H
#define SL_WEBSTATIC_H

#include <stddef.h>

extern const char sl_web_css[];
extern const size_t sl_web_css_len;
extern const char sl_web_js[];
extern const size_t sl_web_js_len;

#endif
