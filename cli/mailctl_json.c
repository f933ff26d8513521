/* mailctl --json: the flag, and any protobuf message as JSON (mailctl.h).
 * Field names are the .proto's (proto/mxfleet.proto documents them), so the
 * JSON of a list or a change is as stable as the contract itself. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mailctl.h"
#include "xmalloc.h"

int mailctl_json;

int
mailctl_json_arg(int *argc, char **argv)
{
	int n = 0;

	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			mailctl_json = 1;
		else
			argv[n++] = argv[i];
	}
	*argc = n;
	return mailctl_json;
}

/* "DIRECTION_INBOUND" of enum Direction: "inbound" (the enum's name as a
 * prefix dropped, lower case), as the text output spells it. */
static json_t *
mailctl_json_enum(const ProtobufCEnumDescriptor *d, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
	char buf[128];
	size_t skip = strlen(d->short_name), i;

	if (ev == NULL)
		return json_integer(v);
	if (strncasecmp(ev->name, d->short_name, skip) != 0 || ev->name[skip] != '_')
		skip = (size_t)-1;
	const char *s = ev->name + skip + 1;
	for (i = 0; s[i] && i + 1 < sizeof(buf); i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[i] = '\0';
	return json_string(buf);
}

static json_t *
mailctl_json_hex(const ProtobufCBinaryData *b)
{
	char *s = xmalloc(b->len * 2 + 1);

	for (size_t i = 0; i < b->len; i++)
		snprintf(s + 2 * i, 3, "%02x", b->data[i]);
	s[b->len * 2] = '\0';
	json_t *o = json_string(s);
	free(s);
	return o;
}

/* One value of field f at p. */
static json_t *
mailctl_json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return mailctl_json_enum(f->descriptor, *(const int *)p);
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return json_string(s ? s : "");
	}
	case PROTOBUF_C_TYPE_BYTES:
		return mailctl_json_hex(p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		return m ? mailctl_pb_json(m) : json_null();
	}
	}
	return json_null();
}

static size_t
mailctl_json_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

json_t *
mailctl_pb_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	json_t *o = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *v = *(char *const *)p;
			json_t *a = json_array();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(a, mailctl_json_value(f, v + k *
				    mailctl_json_size(f)));
			json_object_set_new(o, f->name, a);
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		json_object_set_new(o, f->name, mailctl_json_value(f, p));
	}
	return o;
}
