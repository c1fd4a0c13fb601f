"""fsql's surface on the wire: ``features.*`` lookups, ``offline.*``/``sources.*``/``fsql.*``
relations, ``training_set(...)``, CREATE/DROP of definitions and the lookup fast lane, plugged
into the wire layer (:mod:`fsql_server.pg`) through its planner interface (:mod:`.app` wires
them).
"""
