#include "smtp_parser.h"
#include "dsn_param.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} smtp_parser_verbs[] = {
	{ "HELO", SMTP_CMD_HELO }, { "EHLO", SMTP_CMD_EHLO }, { "LHLO", SMTP_CMD_LHLO },
	{ "MAIL", SMTP_CMD_MAIL }, { "RCPT", SMTP_CMD_RCPT }, { "DATA", SMTP_CMD_DATA },
	{ "BDAT", SMTP_CMD_BDAT }, { "RSET", SMTP_CMD_RSET }, { "NOOP", SMTP_CMD_NOOP },
	{ "QUIT", SMTP_CMD_QUIT }, { "VRFY", SMTP_CMD_VRFY }, { "EXPN", SMTP_CMD_EXPN },
	{ "HELP", SMTP_CMD_HELP }, { "STARTTLS", SMTP_CMD_STARTTLS }, { "AUTH", SMTP_CMD_AUTH },
};

void
smtp_parser_command(const char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t vlen = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cmd->verb = SMTP_CMD_UNKNOWN;
	cmd->name = "";
	for (size_t i = 0; i < sizeof(smtp_parser_verbs) / sizeof(smtp_parser_verbs[0]); i++) {
		const char *n = smtp_parser_verbs[i].name;
		if (strlen(n) == vlen && strncasecmp(line, n, vlen) == 0) {
			cmd->verb = smtp_parser_verbs[i].verb;
			cmd->name = n;
			break;
		}
	}
	const char *a = line + vlen;
	while (*a == ' ')
		a++;
	cmd->args = a;
}

static int
smtp_parser_atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Domain: LDH labels, or an address literal "[...]". */
static int
smtp_parser_domain_ok(const char *d, size_t len, int allow_utf8)
{
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	if (d[0] == '[') {
		if (d[len - 1] != ']' || len < 3)
			return 0;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)d[i];
			if (!(isalnum(c) || c == '.' || c == ':' || c == '-'))
				return 0;
		}
		return 1;
	}
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			if (!allow_utf8)
				return 0;
		} else if (!(isalnum(c) || c == '-'))
			return 0;
		else if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 || len > 1;	/* a trailing dot is tolerated */
}

int
smtp_parser_helo_ok(const char *arg)
{
	size_t len = strlen(arg);
	/* Clients are sloppy here (bare IPs, underscores); refuse only what can
	 * not be a name at all so real senders are not lost over cosmetics. */
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '@')
			return 0;
	}
	return 1;
}

int
smtp_parser_path(const char *arg, const char *keyword, int allow_empty,
    int allow_utf8, char *addr, size_t addrsz, const char **params)
{
	size_t kl = strlen(keyword);
	const char *p;

	if (strncasecmp(arg, keyword, kl) != 0)
		return SMTP_PARSE_SYNTAX;
	p = arg + kl;
	while (*p == ' ')
		p++;
	if (*p != '<')
		return SMTP_PARSE_SYNTAX;
	p++;
	const char *close = p;
	int quoted = 0;
	/* Find the closing bracket, honouring a quoted local part. */
	for (; *close; close++) {
		if (quoted) {
			if (*close == '\\' && close[1])
				close++;
			else if (*close == '"')
				quoted = 0;
		} else if (*close == '"')
			quoted = 1;
		else if (*close == '>')
			break;
	}
	if (*close != '>')
		return SMTP_PARSE_SYNTAX;
	const char *end = close;
	/* A source route (@a,@b:) is ignored as RFC 5321 4.1.1.3 asks. */
	if (*p == '@') {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (colon == NULL)
			return SMTP_PARSE_SYNTAX;
		p = colon + 1;
	}
	size_t len = (size_t)(end - p);
	if (len + 2 > SMTP_PATH_MAX || len + 1 > addrsz)
		return SMTP_PARSE_TOO_LONG;
	if (len == 0) {
		if (!allow_empty)
			return SMTP_PARSE_SYNTAX;
		addr[0] = '\0';
		goto params;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x80 && !allow_utf8)
			return SMTP_PARSE_NEED_UTF8;
		if (c < 0x20 || c == 0x7f)
			return SMTP_PARSE_SYNTAX;
	}
	/* Local part. */
	const char *at = NULL;
	if (*p == '"') {
		const char *q = p + 1;
		for (; q < end; q++) {
			if (*q == '\\' && q + 1 < end)
				q++;
			else if (*q == '"')
				break;
		}
		if (q >= end || q + 1 >= end || q[1] != '@')
			return SMTP_PARSE_SYNTAX;
		at = q + 1;
	} else {
		const char *q = p;
		for (; q < end && *q != '@'; q++) {
			unsigned char c = (unsigned char)*q;
			if (!(smtp_parser_atext(c) || c == '.' || c >= 0x80))
				return SMTP_PARSE_SYNTAX;
		}
		if (q == p)
			return SMTP_PARSE_SYNTAX;
		if (q == end) {
			/* RFC 5321 4.5.1: <postmaster> without a domain is a valid recipient. */
			if (!allow_empty && (size_t)(end - p) == 10 && strncasecmp(p, "postmaster", 10) == 0) {
				memcpy(addr, p, len);
				addr[len] = '\0';
				goto params;
			}
			return SMTP_PARSE_SYNTAX;
		}
		at = q;
	}
	if ((size_t)(at - p) > SMTP_LOCAL_MAX)
		return SMTP_PARSE_TOO_LONG;
	if (!smtp_parser_domain_ok(at + 1, (size_t)(end - at - 1), allow_utf8))
		return SMTP_PARSE_SYNTAX;
	memcpy(addr, p, len);
	addr[len] = '\0';
params:
	p = close + 1;
	if (*p != '\0' && *p != ' ')
		return SMTP_PARSE_SYNTAX;
	while (*p == ' ')
		p++;
	*params = p;
	return SMTP_PARSE_OK;
}

int
smtp_parser_params(const char *s, struct smtp_param *out, int max)
{
	int n = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		if (n >= max)
			return -1;
		struct smtp_param *pm = &out[n];
		size_t k = 0;
		while (*s && *s != ' ' && *s != '=') {
			unsigned char c = (unsigned char)*s;
			if (!(isalnum(c) || c == '-') || k + 1 >= sizeof(pm->key))
				return -1;
			pm->key[k++] = (char)toupper(c);
			s++;
		}
		if (k == 0)
			return -1;
		pm->key[k] = '\0';
		pm->has_value = 0;
		pm->value[0] = '\0';
		if (*s == '=') {
			size_t v = 0;
			s++;
			pm->has_value = 1;
			while (*s && *s != ' ') {
				unsigned char c = (unsigned char)*s;
				if (c < 0x21 || c == 0x7f || v + 1 >= sizeof(pm->value))
					return -1;
				pm->value[v++] = (char)c;
				s++;
			}
			if (v == 0)
				return -1;
			pm->value[v] = '\0';
		}
		n++;
	}
	return n;
}

int
smtp_parser_dsn_mail(const struct smtp_param *p, int *ret, const char **envid)
{
	if (strcmp(p->key, "RET") == 0) {
		if (*ret != DSN_RET_NONE)
			return SMTP_PARSE_DUPLICATE;
		if (p->has_value && strcasecmp(p->value, "FULL") == 0)
			*ret = DSN_RET_FULL;
		else if (p->has_value && strcasecmp(p->value, "HDRS") == 0)
			*ret = DSN_RET_HDRS;
		else
			return SMTP_PARSE_SYNTAX;
		return 1;
	}
	if (strcmp(p->key, "ENVID") == 0) {
		if (*envid != NULL)
			return SMTP_PARSE_DUPLICATE;
		if (!p->has_value || !dsn_envid_ok(p->value, strlen(p->value)))
			return SMTP_PARSE_SYNTAX;
		*envid = p->value;
		return 1;
	}
	return 0;
}

int
smtp_parser_dsn_rcpt(const struct smtp_param *p, unsigned *notify, const char **orcpt)
{
	if (strcmp(p->key, "NOTIFY") == 0) {
		if (*notify != 0)
			return SMTP_PARSE_DUPLICATE;
		if (!p->has_value || dsn_notify_parse(p->value, strlen(p->value), notify) < 0)
			return SMTP_PARSE_SYNTAX;
		return 1;
	}
	if (strcmp(p->key, "ORCPT") == 0) {
		if (*orcpt != NULL)
			return SMTP_PARSE_DUPLICATE;
		if (!p->has_value || !dsn_orcpt_ok(p->value, strlen(p->value)))
			return SMTP_PARSE_SYNTAX;
		*orcpt = p->value;
		return 1;
	}
	return 0;
}

int
smtp_parser_has_utf8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

const char *
smtp_parser_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : NULL;
}

void
smtp_data_init(struct smtp_data *d, uint64_t max)
{
	d->state = SMTP_DATA_BOL;
	d->flags = 0;
	d->size = 0;
	d->max = max;
}

/* Content is emitted only while the message is still good and within size. */
static inline void
smtp_data_emit(struct smtp_data *d, struct buf *out, const char *p, size_t n)
{
	d->size += n;
	if (d->max && d->size > d->max)
		d->flags |= SMTP_DATA_TOO_BIG;
	if (d->flags == 0)
		buf_append(out, p, n);
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	while (i < len && d->state != SMTP_DATA_END) {
		char c = in[i];
		switch (d->state) {
		case SMTP_DATA_TEXT: {
			/* Fast path: copy the run of ordinary bytes at once. */
			size_t j = i;
			while (j < len && in[j] != '\r' && in[j] != '\n')
				j++;
			if (j > i) {
				smtp_data_emit(d, out, in + i, j - i);
				i = j;
				continue;
			}
			if (c == '\r')
				d->state = SMTP_DATA_CR;
			else {
				d->flags |= SMTP_DATA_BARE_LF;
				d->state = SMTP_DATA_BOL_BARE;
			}
			i++;
			break;
		}
		case SMTP_DATA_BOL:
			if (c == '.') {
				d->state = SMTP_DATA_DOT;
				i++;
			} else
				d->state = SMTP_DATA_TEXT;
			break;
		case SMTP_DATA_BOL_BARE:
			/* After a bare LF a dot is content, never an end marker. */
			if (c == '.') {
				smtp_data_emit(d, out, ".", 1);
				i++;
			}
			d->state = SMTP_DATA_TEXT;
			break;
		case SMTP_DATA_CR:
			if (c == '\n') {
				smtp_data_emit(d, out, "\r\n", 2);
				d->state = SMTP_DATA_BOL;
				i++;
			} else {
				d->flags |= SMTP_DATA_BARE_CR;
				d->state = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_DOT:
			if (c == '\r') {
				d->state = SMTP_DATA_DOT_CR;
				i++;
			} else if (c == '\n') {
				/* <CRLF>.<LF> */
				d->flags |= SMTP_DATA_BARE_LF;
				smtp_data_emit(d, out, ".", 1);
				d->state = SMTP_DATA_BOL_BARE;
				i++;
			} else
				d->state = SMTP_DATA_TEXT;	/* dot removed: unstuffed */
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				d->state = SMTP_DATA_END;
				i++;
			} else {
				/* <CRLF>.<CR> followed by anything else */
				d->flags |= SMTP_DATA_BARE_CR;
				smtp_data_emit(d, out, ".", 1);
				d->state = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_END:
			break;
		}
	}
	return i;
}

void
smtp_bdat_init(struct smtp_bdat *b, uint64_t max)
{
	b->in_cr = 0;
	b->flags = 0;
	b->size = 0;
	b->max = max;
}

void
smtp_bdat_feed(struct smtp_bdat *b, const char *in, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (b->in_cr) {
			if (c != '\n')
				b->flags |= SMTP_DATA_BARE_CR;
			b->in_cr = 0;
			if (c == '\n')
				continue;
		}
		if (c == '\r')
			b->in_cr = 1;
		else if (c == '\n')
			b->flags |= SMTP_DATA_BARE_LF;
	}
	b->size += len;
	if (b->max && b->size > b->max)
		b->flags |= SMTP_DATA_TOO_BIG;
	if (b->flags == 0)
		buf_append(out, in, len);
}

void
smtp_bdat_finish(struct smtp_bdat *b)
{
	if (b->in_cr)
		b->flags |= SMTP_DATA_BARE_CR;
	b->in_cr = 0;
}
