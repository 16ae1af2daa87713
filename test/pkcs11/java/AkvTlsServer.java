// A small TLS server whose key is an HSM key through SunPKCS11 and libakv_pkcs11.so, as a Java
// application (Tomcat, Kafka) would hold one. Run as a single-file program:
//   java AkvTlsServer.java SUNPKCS11_CONFIG KEY_ALIAS PORT
// It listens on 127.0.0.1:PORT, prints "READY <protocol list>" once it does, and answers every
// HTTP request with "hello from java: <alias>", the protocol and the cipher suite, until killed.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509KeyManager;

public class AkvTlsServer {
    public static void main(String[] args) throws Exception {
        Provider p11 = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p11);
        KeyStore ks = KeyStore.getInstance("PKCS11", p11);
        ks.load(null, new char[0]); // no PIN: the agent is the access control (docs/pkcs11.md)
        String alias = args[1];
        if (!ks.isKeyEntry(alias)) throw new IllegalArgumentException("no key entry " + alias + " on the token");
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
        kmf.init(ks, new char[0]);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(new KeyManager[] {only(alias, (X509KeyManager) kmf.getKeyManagers()[0])}, null, null);
        int port = Integer.parseInt(args[2]);
        try (SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory()
                .createServerSocket(port, 16, InetAddress.getByName("127.0.0.1"))) {
            System.out.println("READY " + String.join(",", server.getEnabledProtocols()));
            System.out.flush();
            for (;;) {
                try (SSLSocket s = (SSLSocket) server.accept()) {
                    BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                    String line;
                    while ((line = in.readLine()) != null && !line.isEmpty()) {
                    }
                    String body = "hello from java: " + alias + " " + s.getSession().getProtocol() + " "
                            + s.getSession().getCipherSuite() + "\n";
                    OutputStream out = s.getOutputStream();
                    out.write(("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length()
                            + "\r\n\r\n" + body).getBytes(StandardCharsets.UTF_8));
                    out.flush();
                } catch (Exception e) {
                    System.out.println("connection failed: " + e);
                    System.out.flush();
                }
            }
        }
    }

    /** The token's key manager, restricted to `alias` (the server presents that key, no other). */
    private static X509ExtendedKeyManager only(String alias, X509KeyManager base) {
        String algorithm = base.getPrivateKey(alias).getAlgorithm();
        return new X509ExtendedKeyManager() {
            @Override
            public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
                return keyType.equals(algorithm) ? alias : null;
            }

            @Override
            public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
                return keyType.equals(algorithm) ? alias : null;
            }

            @Override
            public String[] getServerAliases(String keyType, Principal[] issuers) {
                return keyType.equals(algorithm) ? new String[] {alias} : null;
            }

            @Override
            public X509Certificate[] getCertificateChain(String a) {
                return base.getCertificateChain(a);
            }

            @Override
            public PrivateKey getPrivateKey(String a) {
                return base.getPrivateKey(a);
            }

            @Override
            public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
                return null;
            }

            @Override
            public String[] getClientAliases(String keyType, Principal[] issuers) {
                return null;
            }
        };
    }
}
