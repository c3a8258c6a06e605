/*
 * store/registration_row.h - one registration as the statements that return
 * it whole lay it out (registrations_get, registrations_cancel): id,
 * session_id, user_id, organization_id, ticket_type, price_paid,
 * registered_at, cancelled_at ('' when active), then the organization's
 * balance. Only store/ includes this header.
 */
#ifndef ET_STORE_REGISTRATION_ROW_H
#define ET_STORE_REGISTRATION_ROW_H

#include <libpq-fe.h>

#include "model.h"

/* Copies row 0 of res into out (store/registrations.c). */
void registration_from_row(const PGresult *res, struct registration *out);

#endif
