#include "timeutil.h"

#include <stdio.h>

uint64_t
timeutil_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t
timeutil_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
timeutil_rfc5322(char *out, size_t outsz, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	/* strftime's %a/%b follow the locale; the header format is fixed English. */
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	snprintf(out, outsz, "%s, %d %s %d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

char *
timeutil_duration(char *out, size_t outsz, long long s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, outsz, "%llds", s);
	else if (s < 3600)
		snprintf(out, outsz, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, outsz, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, outsz, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	return out;
}
