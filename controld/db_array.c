/* controld: PostgreSQL array literals for statement parameters
 * (db_internal.h). */
#include "db_internal.h"

#include "buf.h"

char *
db_array_literal(char *const *v, size_t n)
{
	struct buf b;

	buf_init(&b);
	buf_appendc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_appendc(&b, ',');
		buf_appendc(&b, '"');
		for (const char *p = v[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_appendc(&b, '\\');
			buf_appendc(&b, *p);
		}
		buf_appendc(&b, '"');
	}
	buf_appendc(&b, '}');
	return b.data;
}
