/*
 * http/acceptor.h - the listen socket and the thread that accepts from it,
 * counts open connections and refuses those over connection_limit (ADR 0009).
 */
#ifndef ET_HTTP_ACCEPTOR_H
#define ET_HTTP_ACCEPTOR_H

#include <stdbool.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct acceptor;

/* Binds and listens on addr (its port may be 0) and sets *port to the bound
 * port. NULL with errno set on failure. Free with acceptor_free. */
struct acceptor *acceptor_listen(const struct sockaddr_storage *addr, unsigned connection_limit,
                                 unsigned *port);
/* Starts the thread handing accepted connections to daemon; false when it
 * could not start. */
bool acceptor_start(struct acceptor *a, struct MHD_Daemon *daemon);
/* MHD notified the close of a connection this acceptor handed over
 * (MHD_CONNECTION_NOTIFY_CLOSED): its place is free. Any thread. */
void acceptor_closed(struct acceptor *a);
/* Stops accepting: the listen socket is closed (new connects are refused by
 * the kernel) and the thread joined. Connections already handed over stay. */
void acceptor_stop(struct acceptor *a);
/* Frees a (NULL ok); after MHD_stop_daemon, which still reports closes. */
void acceptor_free(struct acceptor *a);

#endif
