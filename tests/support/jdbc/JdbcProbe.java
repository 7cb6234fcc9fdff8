// Logs in through real JDBC drivers: reads one JDBC URL per line on stdin, prints one line
// per URL on stdout: "ok" when DriverManager connects and SELECT 1 answers, else
// "failed <SQLState> <exception class>". Messages are not printed: a driver's message could
// echo a URL, and the URLs carry passwords. Run as a single-file program (Java 11+):
//   java -cp /usr/share/java/postgresql.jar:/usr/share/java/mariadb-java-client.jar JdbcProbe.java
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class JdbcProbe {
    public static void main(String[] args) throws Exception {
        DriverManager.setLoginTimeout(10);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String url;
        while ((url = in.readLine()) != null) {
            if (url.isEmpty()) {
                continue;
            }
            System.out.println(probe(url));
        }
    }

    private static String probe(String url) {
        try (Connection conn = DriverManager.getConnection(url);
             Statement stmt = conn.createStatement();
             ResultSet rows = stmt.executeQuery("SELECT 1")) {
            return rows.next() && rows.getInt(1) == 1 ? "ok" : "failed - no row";
        } catch (SQLException e) {
            return "failed " + e.getSQLState() + " " + e.getClass().getName();
        }
    }
}
