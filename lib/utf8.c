#include "utf8.h"

int
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t k;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0)
		k = 1, v = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		k = 2, v = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		k = 3, v = c & 0x07, min = 0x10000;
	else
		return -1;
	if (n - 1 < k)
		return -1;
	for (size_t j = 1; j <= k; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return -1;
		v = (v << 6) | (s[j] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -1;
	*cp = v;
	return (int)k + 1;
}

int
utf8_valid(const unsigned char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0; i < n;) {
		int len = utf8_decode(s + i, n - i, &cp);
		if (len < 0)
			return 0;
		i += (size_t)len;
	}
	return 1;
}
