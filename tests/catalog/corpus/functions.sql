-- catalog functions, casts and views BI tools call (DBeaver, Metabase, Superset, Tableau),
-- one query per line, replayed against fsql and PostgreSQL 15: the rows must be equal
SELECT 'features.user'::regclass::text, 'features."user"'::regclass::text
SELECT 'int4'::regtype::text, 'text'::regtype::oid, 'bigint'::regtype::text
SELECT to_regclass('sources.tx')::text, to_regclass('no_such_table') IS NULL
SELECT format_type(23, -1), format_type(701, NULL), format_type(1043, -1), format_type(1184, -1)
SELECT has_table_privilege('features.user', 'SELECT'), has_schema_privilege('features', 'USAGE')
SELECT has_any_column_privilege('features.user'::regclass, 'SELECT')
SELECT pg_table_is_visible('pg_class'::regclass), pg_table_is_visible('features.user'::regclass)
SELECT current_schemas(true), current_schemas(false)
SELECT setting FROM pg_settings WHERE name = 'max_identifier_length'
SELECT setting FROM pg_catalog.pg_settings WHERE name = 'standard_conforming_strings'
SELECT obj_description('features.user'::regclass, 'pg_class'), obj_description('sources.tx'::regclass)
SELECT col_description('features.user'::regclass, 2), col_description('features.user'::regclass, 1)
SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.relname = 'tx'
SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(spend_7d)$' COLLATE pg_catalog.default
SELECT c.oid::pg_catalog.regclass::text FROM pg_catalog.pg_class c WHERE c.relname = 'user_item'
SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1
SELECT array_upper(ARRAY[1, 2, 3], 1), c.relnatts FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid WHERE c.relname = 'user_item'
SELECT pg_get_indexdef(i.indexrelid), pg_get_constraintdef(k.oid) FROM pg_index i JOIN pg_constraint k ON k.conindid = i.indexrelid WHERE i.indrelid = 'features.user_item'::regclass
SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema IN ('features', 'offline', 'sources') ORDER BY 1, 2
SELECT column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns WHERE table_schema = 'features' AND table_name = 'user_item' ORDER BY ordinal_position
SELECT column_name, data_type, udt_name FROM information_schema.columns WHERE table_schema = 'fsql' AND table_name = 'feature_sets' ORDER BY ordinal_position
SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ('features', 'offline', 'sources', 'fsql', 'public') ORDER BY 1
SELECT a.attname, a.atttypid::regtype::text, a.attnotnull, a.attnum FROM pg_attribute a WHERE a.attrelid = 'features.user'::regclass AND a.attnum > 0 ORDER BY a.attnum
SELECT t.typname, t.typarray FROM pg_type t JOIN pg_namespace ns ON t.typnamespace = ns.oid WHERE t.typname IN ('int4', 'text', 'float8', 'timestamptz') ORDER BY 1
SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'hstore'
SELECT x.word FROM pg_get_keywords() x WHERE x.word IN ('select', 'user', 'from', 'abort') ORDER BY 1
SELECT tablename FROM pg_tables WHERE schemaname = 'features' ORDER BY 1
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'features' ORDER BY 1
SELECT d.description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid WHERE c.relname = 'spend_7d' AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass
SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') AND substring(pg_catalog.quote_ident(c.relname),1,2)='us' AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'features') ORDER BY 1
SELECT pg_catalog.quote_ident(n.nspname) || '.' FROM pg_catalog.pg_namespace n WHERE substring(pg_catalog.quote_ident(n.nspname) || '.',1,3)='fea' AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_namespace WHERE substring(pg_catalog.quote_ident(nspname) || '.',1,3) = substring('fea',1,pg_catalog.length(pg_catalog.quote_ident(nspname))+1)) = 1
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND substring(pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),1,10)='features.u' ORDER BY 1 LIMIT 1000
SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c WHERE c.oid = a.attrelid AND a.attnum > 0 AND NOT a.attisdropped AND substring(pg_catalog.quote_ident(attname),1,2)='sp' AND pg_catalog.quote_ident(relname)='"user"' ORDER BY 1
-- int2vector/oidvector columns: subscripts from 0, text "1 2" (what pgjdbc and psql parse)
SELECT i.indkey, i.indkey[0], i.indkey[1], array_lower(i.indkey, 1), array_upper(i.indkey, 1), i.indnatts FROM pg_index i WHERE i.indrelid = 'features.user_item'::regclass
SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1] WHERE i.indrelid = 'features.user_item'::regclass
SELECT s.k, s.i FROM (SELECT unnest(i.indkey) AS k, generate_subscripts(i.indkey, 1) AS i FROM pg_index i WHERE i.indrelid = 'features.user_item'::regclass) s ORDER BY s.i
SELECT p.proname, p.proargtypes, p.proargtypes[0], p.pronargs FROM pg_proc p WHERE p.proname = 'length' ORDER BY p.oid
SELECT (information_schema._pg_expandarray(i.indkey)).n, (information_schema._pg_expandarray(i.indkey)).x FROM pg_index i WHERE i.indrelid = 'features.user_item'::regclass
-- PostgreSQL 15's built-in rows (scripts/dump_pg15_catalog.py): functions, operators, operator classes, views, extensions, casts, languages
SELECT p.oid, p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prorettype::regtype::text FROM pg_proc p WHERE p.proname IN ('length', 'format_type', 'now', 'generate_series') ORDER BY 1
SELECT count(*), count(DISTINCT proname), sum(pronargs) FROM pg_proc
SELECT o.oprname, o.oprleft::regtype::text, o.oprright::regtype::text, o.oprresult::regtype::text, o.oprcode::text FROM pg_operator o WHERE o.oprname IN ('~', '||', '@>') ORDER BY 1, 2, 3
SELECT count(*) FROM pg_operator
SELECT c.opcname, am.amname, c.opcdefault FROM pg_opclass c JOIN pg_am am ON am.oid = c.opcmethod WHERE c.opcintype = 'int4'::regtype ORDER BY 1, 2
SELECT schemaname, viewname, viewowner FROM pg_views WHERE schemaname = 'pg_catalog' ORDER BY 2 LIMIT 20
SELECT count(*) FROM pg_views
SELECT extname, extversion, extnamespace::regnamespace::text, extowner::regrole::text FROM pg_extension
SELECT castsource::regtype::text, casttarget::regtype::text, castcontext FROM pg_cast WHERE castsource = 'int4'::regtype ORDER BY 2
SELECT lanname, lanpltrusted FROM pg_language ORDER BY 1
SELECT t.typname, t.typinput, t.typreceive, t.typinput = 'array_in'::regproc FROM pg_type t WHERE t.typname IN ('_int4', 'int4', 'text') ORDER BY 1
SELECT 'length(text)'::regprocedure::oid, 1317::regprocedure::text, 'now'::regproc::oid, 'pg_catalog.now'::regproc::text
SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY 1
SELECT proname, pronamespace, proowner, prolang, procost, prorows, provariadic, prosupport, prokind, prosecdef, proleakproof, proisstrict, proretset, provolatile, proparallel, pronargs, pronargdefaults, prorettype, proargtypes, proallargtypes, proargmodes, proargnames, prosrc, proacl FROM pg_proc WHERE proname IN ('length', 'generate_series', 'pg_get_keywords') ORDER BY oid
SELECT count(*), count(DISTINCT typname), count(typarray) FILTER (WHERE typarray <> 0) FROM pg_type
SELECT typname, typlen, typbyval, typtype, typcategory, typdelim, typelem, typarray, typinput, typoutput, typreceive, typsend, typalign, typstorage FROM pg_type WHERE oid IN (16, 20, 23, 25, 1043, 1184, 2950, 3802, 1009) ORDER BY oid
-- SELECT * over catalogs with regproc and int2vector/oidvector columns shows them as PostgreSQL does
SELECT * FROM pg_type WHERE oid IN (23, 1009) ORDER BY oid
SELECT t.*, c.relkind FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid WHERE t.typname IN ('pg_class', '_int4') ORDER BY t.oid
SELECT * FROM pg_index WHERE indexrelid = 'pg_class_relname_nsp_index'::regclass
SELECT * FROM pg_proc WHERE oid IN (1317, 1574) ORDER BY oid
SELECT * FROM pg_am ORDER BY oid
-- the session's own row (the reference is asked as postgres, fsql as tester: compare what does not name them)
SELECT state, query, backend_type, application_name, pid = pg_backend_pid(), pg_catalog.pg_backend_pid() > 0 FROM pg_stat_activity WHERE pid = pg_backend_pid()
