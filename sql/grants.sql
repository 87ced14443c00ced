-- Last: nothing in the schema is executable by PUBLIC (functions are by
-- default), then each role gets exactly what it calls.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tollgate FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  tollgate.consume(text, text, bigint),
  tollgate.check(text, text, bigint),
  tollgate.require(text, text, bigint),
  tollgate.note_blocked(text, text, bigint),
  tollgate.refund(text, text, bigint),
  tollgate.usage(text),
  tollgate.set_customer(text, text, text),
  tollgate.attach_row_gate(regclass, name, text),
  tollgate.detach_row_gate(regclass, text),
  tollgate.set_row_counts(text, text[], bigint[]),
  tollgate._row_gate(),
  tollgate.routes()
TO tollgate_app;
