import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;

import org.postgresql.PGResultSetMetaData;

/**
 * Drives pgjdbc for tests/server/test_row_metadata.py and test_protocol_params.py: result
 * metadata and parameters bound with each JDBC setter (pgjdbc declares the parameter's type
 * in Parse, and switches to binary transfer after prepareThreshold=5 executions).
 *
 * Usage: java -cp postgresql.jar:. FsqlWireProbe URL USER OP...
 *   exec|SQL                 Statement.execute
 *   meta|SQL                 one line per column: "index name typeName precision scale
 *                            baseTableName"
 *   typed|N|KIND:VALUE|SQL   PreparedStatement with one parameter set with the setter for
 *                            KIND (int, short, long, double, decimal, bool, string, date,
 *                            timestamp), executed N times; prints "COUNT <first column>"
 *   error|SQL                prints "SQLSTATE <state>", then checks the connection still works
 */
public class FsqlWireProbe {
    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0], args[1], "")) {
            for (int i = 2; i < args.length; i++) {
                String kind = args[i].substring(0, args[i].indexOf('|'));
                String[] op = args[i].split("\\|", kind.equals("typed") ? 4 : 2);
                switch (op[0]) {
                    case "exec":
                        try (Statement st = conn.createStatement()) {
                            st.execute(op[1]);
                        }
                        break;
                    case "meta":
                        try (Statement st = conn.createStatement();
                             ResultSet rs = st.executeQuery(op[1])) {
                            ResultSetMetaData md = rs.getMetaData();
                            PGResultSetMetaData pg = md.unwrap(PGResultSetMetaData.class);
                            for (int c = 1; c <= md.getColumnCount(); c++) {
                                System.out.println(c + "\t" + md.getColumnName(c) + "\t"
                                    + md.getColumnTypeName(c) + "\t" + md.getPrecision(c) + "\t"
                                    + md.getScale(c) + "\t" + pg.getBaseTableName(c));
                            }
                        }
                        break;
                    case "typed":
                        try (PreparedStatement ps = conn.prepareStatement(op[3])) {
                            int n = Integer.parseInt(op[1]);
                            String type = op[2].substring(0, op[2].indexOf(':'));
                            String value = op[2].substring(op[2].indexOf(':') + 1);
                            String last = null;
                            for (int k = 0; k < n; k++) {
                                bind(ps, type, value);
                                try (ResultSet rs = ps.executeQuery()) {
                                    rs.next();
                                    last = rs.getString(1);
                                }
                            }
                            System.out.println("COUNT\t" + last);
                        }
                        break;
                    case "error":
                        try (Statement st = conn.createStatement()) {
                            st.executeQuery(op[1]);
                            System.out.println("NO ERROR");
                        } catch (SQLException e) {
                            System.out.println("SQLSTATE\t" + e.getSQLState());
                        }
                        try (Statement st = conn.createStatement();
                             ResultSet rs = st.executeQuery("SELECT 1")) {
                            rs.next();
                            System.out.println("ALIVE\t" + rs.getInt(1));
                        }
                        break;
                    default:
                        throw new IllegalArgumentException("unknown op " + op[0]);
                }
            }
        }
    }

    private static void bind(PreparedStatement ps, String type, String value) throws SQLException {
        switch (type) {
            case "int": ps.setInt(1, Integer.parseInt(value)); break;
            case "short": ps.setShort(1, Short.parseShort(value)); break;
            case "long": ps.setLong(1, Long.parseLong(value)); break;
            case "double": ps.setDouble(1, Double.parseDouble(value)); break;
            case "decimal": ps.setBigDecimal(1, new BigDecimal(value)); break;
            case "bool": ps.setBoolean(1, Boolean.parseBoolean(value)); break;
            case "string": ps.setString(1, value); break;
            case "date": ps.setDate(1, Date.valueOf(value)); break;
            case "timestamp": ps.setTimestamp(1, Timestamp.valueOf(value)); break;
            default: throw new IllegalArgumentException("unknown type " + type);
        }
    }
}
