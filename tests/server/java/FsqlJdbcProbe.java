import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Drives pgjdbc against the fsql server for tests/server/test_clients.py.
 *
 * Usage: java -cp postgresql.jar:. FsqlJdbcProbe URL USER PASSWORD OP...
 * Each OP is one of
 *   query|SQL                  Statement.executeQuery (a failure prints its SQLSTATE)
 *   prepared|N|TYPE|VALUE|SQL  PreparedStatement with one parameter (TYPE long or string),
 *                              executed N times (more than prepareThreshold=5 switches pgjdbc
 *                              to a named server-side statement and binary transfer)
 *   fetch|SIZE|SQL             autocommit off, setFetchSize(SIZE): rows come in portal chunks
 *   error|SQL                  prints the SQLSTATE of the failure
 *   exec|SQL                   Statement.execute (DDL, INSERT), prints the update count
 *   in|V1,V2,...|SQL           PreparedStatement with one parameter per value (a whole number
 *                              as setLong, anything else as setString), e.g. IN (?,?)
 *   batch|R1;R2;...|SQL        PreparedStatement.addBatch for each row (values separated by
 *                              ',', typed as for in), then executeBatch; prints the counts
 * and prints one line per row: "<op index>\t<col>\t<col>..." (NULL as \N), then
 * "<op index>\tEND"; errors print "<op index>\tSQLSTATE\t<state>".
 */
public class FsqlJdbcProbe {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection conn = DriverManager.getConnection(url, args[1], args[2])) {
            for (int i = 3; i < args.length; i++) {
                String kind = args[i].substring(0, args[i].indexOf('|'));
                int parts = kind.equals("prepared") ? 5
                        : kind.equals("fetch") || kind.equals("in") || kind.equals("batch") ? 3 : 2;
                // the SQL is the last field and may itself contain '|'
                String[] op = args[i].split("\\|", parts);
                int index = i - 3;
                switch (op[0]) {
                    case "query":
                        try (Statement st = conn.createStatement();
                             ResultSet rs = st.executeQuery(op[1])) {
                            print(index, rs);
                        } catch (SQLException e) {
                            System.out.println(index + "\tSQLSTATE\t" + e.getSQLState());
                        }
                        break;
                    case "prepared":
                        try (PreparedStatement ps = conn.prepareStatement(op[4])) {
                            int n = Integer.parseInt(op[1]);
                            for (int k = 0; k < n; k++) {
                                if (op[2].equals("long")) {
                                    ps.setLong(1, Long.parseLong(op[3]));
                                } else {
                                    ps.setString(1, op[3]);
                                }
                                try (ResultSet rs = ps.executeQuery()) {
                                    if (k == n - 1) {
                                        print(index, rs);
                                    } else {
                                        while (rs.next()) { }
                                    }
                                }
                            }
                        }
                        break;
                    case "fetch":
                        conn.setAutoCommit(false);
                        try (Statement st = conn.createStatement()) {
                            st.setFetchSize(Integer.parseInt(op[1]));
                            try (ResultSet rs = st.executeQuery(op[2])) {
                                print(index, rs);
                            }
                        }
                        conn.commit();
                        conn.setAutoCommit(true);
                        break;
                    case "in":
                        try (PreparedStatement ps = conn.prepareStatement(op[2])) {
                            bind(ps, op[1]);
                            try (ResultSet rs = ps.executeQuery()) {
                                print(index, rs);
                            }
                        } catch (SQLException e) {
                            System.out.println(index + "\tSQLSTATE\t" + e.getSQLState());
                        }
                        break;
                    case "batch":
                        try (PreparedStatement ps = conn.prepareStatement(op[2])) {
                            for (String row : op[1].split(";")) {
                                bind(ps, row);
                                ps.addBatch();
                            }
                            StringBuilder line = new StringBuilder(index + "\tCOUNTS");
                            for (int count : ps.executeBatch()) {
                                line.append('\t').append(count);
                            }
                            System.out.println(line);
                        } catch (SQLException e) {
                            SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                            System.out.println(index + "\tSQLSTATE\t" + cause.getSQLState());
                        }
                        break;
                    case "exec":
                        try (Statement st = conn.createStatement()) {
                            st.execute(op[1]);
                            System.out.println(index + "\tCOUNT\t" + st.getUpdateCount());
                        }
                        break;
                    case "error":
                        try (Statement st = conn.createStatement()) {
                            st.executeQuery(op[1]);
                            System.out.println(index + "\tNO ERROR");
                        } catch (SQLException e) {
                            System.out.println(index + "\tSQLSTATE\t" + e.getSQLState());
                        }
                        break;
                    default:
                        throw new IllegalArgumentException("unknown op " + op[0]);
                }
            }
        }
    }

    private static void bind(PreparedStatement ps, String values) throws SQLException {
        String[] items = values.split(",");
        for (int k = 0; k < items.length; k++) {
            try {
                ps.setLong(k + 1, Long.parseLong(items[k]));
            } catch (NumberFormatException e) {
                ps.setString(k + 1, items[k]);
            }
        }
    }

    private static void print(int index, ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        while (rs.next()) {
            StringBuilder line = new StringBuilder(Integer.toString(index));
            for (int c = 1; c <= md.getColumnCount(); c++) {
                String v = rs.getString(c);
                line.append('\t').append(v == null ? "\\N" : v);
            }
            System.out.println(line);
        }
        System.out.println(index + "\tEND");
    }
}
