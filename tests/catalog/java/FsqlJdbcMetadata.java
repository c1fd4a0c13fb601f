import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;

/**
 * Prints pgjdbc's DatabaseMetaData answers for tests/catalog/test_jdbc.py, so the same calls
 * against fsql and against PostgreSQL 15 can be compared line by line.
 *
 * Usage: java -cp postgresql.jar:. FsqlJdbcMetadata URL USER OP...
 * Each OP is one of
 *   schemas                               getSchemas()
 *   tables|SCHEMA_PATTERN|NAME_PATTERN|TYPES   getTables (TYPES comma-separated, or * for null)
 *   columns|SCHEMA_PATTERN|TABLE_PATTERN  getColumns(null, s, t, "%")
 *   pk|SCHEMA|TABLE                       getPrimaryKeys
 *   typeinfo                              getTypeInfo (row count only: PostgreSQL has many more)
 *   functions|SCHEMA_PATTERN|NAME_PATTERN getFunctions
 *   procedures|SCHEMA_PATTERN|NAME_PATTERN getProcedures
 *   functioncolumns|SCHEMA_PATTERN|NAME_PATTERN getFunctionColumns(null, s, n, "%")
 *   procedurecolumns|SCHEMA_PATTERN|NAME_PATTERN getProcedureColumns(null, s, n, "%")
 *   importedkeys|SCHEMA|TABLE / exportedkeys|SCHEMA|TABLE   getImportedKeys / getExportedKeys
 *   indexinfo|SCHEMA|TABLE                getIndexInfo(null, s, t, false, true)
 *   tabletypes                            getTableTypes
 *   query|SQL                             ResultSetMetaData of a query (name, type, class)
 * printing "<op index>\t<col>\t<col>..." per row (NULL as \N), then "<op index>\tEND";
 * an exception prints "<op index>\tERROR\t<message>".
 */
public class FsqlJdbcMetadata {
    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0], args[1], "")) {
            DatabaseMetaData md = conn.getMetaData();
            for (int i = 2; i < args.length; i++) {
                String[] op = args[i].split("\\|", -1);
                int index = i - 2;
                try {
                    switch (op[0]) {
                        case "schemas":
                            print(index, md.getSchemas());
                            break;
                        case "tables":
                            String[] types = op[3].equals("*") ? null : op[3].split(",");
                            print(index, md.getTables(null, op[1], op[2], types));
                            break;
                        case "columns":
                            print(index, md.getColumns(null, op[1], op[2], "%"));
                            break;
                        case "pk":
                            print(index, md.getPrimaryKeys(null, op[1], op[2]));
                            break;
                        case "typeinfo":
                            count(index, md.getTypeInfo());
                            break;
                        case "functions":
                            print(index, md.getFunctions(null, op[1], op[2]));
                            break;
                        case "procedures":
                            print(index, md.getProcedures(null, op[1], op[2]));
                            break;
                        case "functioncolumns":
                            print(index, md.getFunctionColumns(null, op[1], op[2], "%"));
                            break;
                        case "procedurecolumns":
                            print(index, md.getProcedureColumns(null, op[1], op[2], "%"));
                            break;
                        case "importedkeys":
                            print(index, md.getImportedKeys(null, op[1], op[2]));
                            break;
                        case "exportedkeys":
                            print(index, md.getExportedKeys(null, op[1], op[2]));
                            break;
                        case "indexinfo":
                            print(index, md.getIndexInfo(null, op[1], op[2], false, true));
                            break;
                        case "tabletypes":
                            print(index, md.getTableTypes());
                            break;
                        case "query":
                            try (ResultSet rs = conn.createStatement().executeQuery(op[1])) {
                                ResultSetMetaData meta = rs.getMetaData();
                                for (int c = 1; c <= meta.getColumnCount(); c++) {
                                    System.out.println(index + "\t" + meta.getColumnName(c) + "\t"
                                        + meta.getColumnTypeName(c) + "\t"
                                        + meta.getColumnClassName(c));
                                }
                                System.out.println(index + "\tEND");
                            }
                            break;
                        default:
                            throw new IllegalArgumentException(op[0]);
                    }
                } catch (Exception e) {
                    System.out.println(index + "\tERROR\t" + e.getMessage().replace('\n', ' '));
                }
            }
        }
    }

    static void print(int index, ResultSet rs) throws Exception {
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            StringBuilder line = new StringBuilder(Integer.toString(index));
            for (int c = 1; c <= n; c++) {
                String v = rs.getString(c);
                line.append('\t').append(v == null ? "\\N" : v.replace('\n', ' '));
            }
            System.out.println(line);
        }
        System.out.println(index + "\tEND");
        rs.close();
    }

    static void count(int index, ResultSet rs) throws Exception {
        int rows = 0;
        while (rs.next()) {
            rows++;
        }
        System.out.println(index + "\tROWS\t" + (rows > 0 ? "some" : "none"));
        System.out.println(index + "\tEND");
        rs.close();
    }
}
