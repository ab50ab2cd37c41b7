"""GET /openapi.json: the API described from the code's own limits and names. It reads from
every side (intake, staff, core) and nothing but create_app imports it."""
