/* The TCP state of a socket (TCP_INFO's tcpi_state: TCP_ESTABLISHED...), -1 if it has none. */
#ifndef CRYO_TEST_TCPSTATE_H
#define CRYO_TEST_TCPSTATE_H
#include "common.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

HELPER int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
		return -1;
	return ti.tcpi_state;
}
#endif
