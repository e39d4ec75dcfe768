// Command cloudsigma-csi-driver is the CloudSigma CSI plugin: controller,
// node, or both in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/driver"
	"github.com/cloudsigma-csi/driver/pkg/metrics"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

type config struct {
	endpoint, mode              string
	apiURL, location            string
	allowInsecureHTTP           bool
	credentialsDir              string
	nodeID, clusterID           string
	byIDDir, sysDir, contextDev string
	maxVolumes                  int
	channels                    virtio.Channels
	metricsAddress              string
	sweepInterval               time.Duration
	maxResponseBytes            int64
	maxListItems                int
	outOfServiceTaint           bool
	outOfServiceAfter           time.Duration
	outOfServiceInterval        time.Duration
	kubeconfig                  string
	showVersion                 bool
	driveIdentity               string // --drive-identity: auto or a device.Mode
	identityStateDir            string
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		os.Exit(2) // parseFlags printed the error and the usage
	}
	if cfg.showVersion {
		fmt.Println(driver.Version())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		klog.ErrorS(err, "Driver failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

// parseFlags reads the command line (without the program name) into a
// config. Errors, and the usage for -help, go to out; -help returns
// flag.ErrHelp. The values are checked later, by config.validate.
func parseFlags(args []string, out io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.endpoint, "endpoint", "unix:///csi/csi.sock", "CSI endpoint: unix:///path/to/csi.sock, or tcp://127.0.0.1:PORT (loopback only)")
	fs.StringVar(&cfg.mode, "mode", "all", "services to run: controller, node or all")
	fs.StringVar(&cfg.apiURL, "api-url", "", "CloudSigma API base URL, e.g. https://zrh.cloudsigma.com/api/2.0/ (default: built from --location)")
	fs.StringVar(&cfg.location, "location", "", "CloudSigma location code (zrh, fra, ...): builds the API URL when --api-url is empty, and is the topology value (default: from the API host)")
	fs.BoolVar(&cfg.allowInsecureHTTP, "allow-insecure-http", false, "allow a plain http API URL (for the simulator only: credentials travel in clear text)")
	fs.StringVar(&cfg.credentialsDir, "credentials-dir", "", "directory with files username and password (or token), e.g. a mounted Secret; default: env CLOUDSIGMA_USERNAME, CLOUDSIGMA_PASSWORD, CLOUDSIGMA_TOKEN")
	fs.StringVar(&cfg.nodeID, "node-id", "", "node ID = CloudSigma server UUID of this machine (node mode; default: read from the server context)")
	fs.StringVar(&cfg.clusterID, "cluster-id", "default", "cluster identity recorded on (and tagging) the drives this cluster owns")
	fs.StringVar(&cfg.byIDDir, "by-id-dir", "/dev/disk/by-id", "directory of virtio-<serial> device links (node mode)")
	fs.StringVar(&cfg.sysDir, "sys-dir", "/sys", "sysfs root used to verify device serials and sizes and to tell a live device from an unplugged one (node mode)")
	fs.StringVar(&cfg.contextDev, "server-context-device", "/dev/ttyS1", "serial device of the CloudSigma server context (node mode)")
	fs.IntVar(&cfg.maxVolumes, "max-volumes-per-node", 0, "volumes a node may attach (default: virtio channels minus one for the boot drive)")
	fs.IntVar(&cfg.channels.Controllers, "virtio-controllers", virtio.DefaultChannels.Controllers, "virtio controllers the attach allocator uses, numbered from 0")
	fs.IntVar(&cfg.channels.Units, "virtio-units", virtio.DefaultChannels.Units, "units per virtio controller (the API documents 0..5)")
	fs.StringVar(&cfg.metricsAddress, "metrics-address", "", "address for Prometheus /metrics, /healthz and /readyz, e.g. :9809 (default: off)")
	fs.DurationVar(&cfg.sweepInterval, "retired-sweep-interval", 10*time.Minute, "how often the controller deletes retired drives (of deleted volumes) whose last snapshot is gone; 0 turns the sweep off")
	fs.Int64Var(&cfg.maxResponseBytes, "api-max-response-bytes", cloudsigma.DefaultMaxResponseBytes, "largest CloudSigma API answer read into memory; a larger one is an error (ResourceExhausted)")
	fs.IntVar(&cfg.maxListItems, "api-max-list-items", cloudsigma.DefaultMaxListItems, "most objects one listing may follow page by page; more is an error (ResourceExhausted)")
	fs.BoolVar(&cfg.outOfServiceTaint, "out-of-service-taint", false, "controller: taint a node NotReady for --out-of-service-after whose CloudSigma server is stopped with node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (Kubernetes then moves its pods and volumes), and remove that taint when the node is Ready and its server running; needs RBAC on nodes and csinodes")
	fs.DurationVar(&cfg.outOfServiceAfter, "out-of-service-after", 5*time.Minute, "how long a node must be NotReady before --out-of-service-taint looks at its server")
	fs.DurationVar(&cfg.outOfServiceInterval, "out-of-service-interval", outOfServiceDefaultInterval, "time between two passes of --out-of-service-taint over the Nodes (each lists Nodes from the API server's cache, and reads CloudSigma only for nodes NotReady longer than --out-of-service-after)")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig file for --out-of-service-taint outside a cluster (default: the pod's service account)")
	fs.StringVar(&cfg.driveIdentity, "drive-identity", "auto", "how a node tells its drives apart (docs/identity.md): auto detects it from what the guest shows; uuid-serial, other-serial or no-serial force it. "+
		"On the controller, uuid-serial skips the content read and the attach window that guests without UUID serials need")
	fs.StringVar(&cfg.identityStateDir, "identity-state-dir", "", "node: where the records of drives identified without a serial are kept; they must outlive the plugin's process "+
		"(default: the directory identity beside the unix socket of --endpoint, else "+device.DefaultStateDir+")")
	fs.BoolVar(&cfg.showVersion, "version", false, "print the version and exit")
	klog.InitFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nThe CloudSigma CSI driver (%s).\n\nFlags:\n", os.Args[0], driver.Version())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	// A stray word would silently end the flags: "--allow-insecure-http
	// false --api-url ..." drops everything after "false".
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments: %q (a bool flag takes its value as --flag=false)", fs.Args())
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return config{}, err
	}
	return cfg, nil
}

// validate checks what the flags cannot: the mode, the virtio channels and
// the attach limit they allow, and the out-of-service flags.
func (cfg config) validate() error {
	if cfg.mode != "controller" && cfg.mode != "node" && cfg.mode != "all" {
		return fmt.Errorf("--mode must be controller, node or all, not %q", cfg.mode)
	}
	if _, _, err := driver.ParseEndpoint(cfg.endpoint); err != nil {
		return fmt.Errorf("--endpoint: %w", err)
	}
	if err := cfg.channels.Validate(); err != nil {
		return err
	}
	if _, err := device.ParseMode(cfg.driveIdentity); err != nil {
		return fmt.Errorf("--drive-identity: %w", err)
	}
	if cfg.maxVolumes < 0 {
		return fmt.Errorf("--max-volumes-per-node %d is negative", cfg.maxVolumes)
	}
	if cfg.maxVolumes > cfg.channels.MaxVolumes() {
		return fmt.Errorf("--max-volumes-per-node %d exceeds the %d volumes the virtio channels can attach", cfg.maxVolumes, cfg.channels.MaxVolumes())
	}
	return cfg.validateOutOfService()
}

func run(ctx context.Context, cfg config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	controllerMode, nodeMode := cfg.mode == "controller" || cfg.mode == "all", cfg.mode == "node" || cfg.mode == "all"
	location, err := topologyLocation(cfg)
	if err != nil {
		return err
	}
	kube, err := outOfServiceKube(cfg) // nil when off
	if err != nil {
		return err
	}
	opts := driver.Options{Endpoint: cfg.endpoint}
	m := metrics.New()
	var reach *driver.Reachability // controller: the API check behind /readyz
	opts.Interceptors = []grpc.UnaryServerInterceptor{m.UnaryServerInterceptor()}
	if controllerMode {
		client, err := newClient(cfg, m)
		if err != nil {
			return err
		}
		svc, err := controller.New(controller.Config{
			Cloud: client, ClusterID: cfg.clusterID, Location: location, Channels: cfg.channels,
			SerialsOnly: cfg.driveIdentity == string(device.ModeUUIDSerial),
		})
		if err != nil {
			return err
		}
		opts.Controller = svc
		if cfg.sweepInterval > 0 {
			go svc.RunSweeper(ctx, cfg.sweepInterval, func(r controller.RetiredReport) { m.SetRetired(r.Drives, r.Bytes) })
		}
		reach = driver.NewReachability(checkAPI(client, cfg.credentialsDir), 30*time.Second, m.SetAPIUp)
		go reach.Run(ctx)
		if kube != nil {
			if err := startOutOfService(ctx, kube, client, cfg.outOfServiceAfter, cfg.outOfServiceInterval); err != nil {
				return err
			}
		}
	}
	if nodeMode {
		onIdentityMode = m.SetIdentityMode
		if opts.Node, err = newNode(ctx, cfg, location); err != nil {
			return err
		}
	}
	d, err := driver.New(opts)
	if err != nil {
		return err
	}
	if cfg.metricsAddress != "" {
		go func() {
			var ready metrics.ReadyFunc
			if reach != nil {
				ready = reach.Ready
			}
			if err := m.Serve(ctx, cfg.metricsAddress, ready); err != nil {
				klog.ErrorS(err, "Metrics server stopped")
			}
		}()
	}
	return d.Run(ctx)
}

func newClient(cfg config, m *metrics.Metrics) (*cloudsigma.Client, error) {
	user, pass, token, err := credentials(cfg.credentialsDir)
	if err != nil {
		return nil, err
	}
	c, err := cloudsigma.New(cloudsigma.Config{
		APIURL: cfg.apiURL, Location: cfg.location,
		Username: user, Password: pass, Token: token,
		AllowInsecureHTTP: cfg.allowInsecureHTTP, HTTPClient: apiHTTPClient(m),
		UserAgent:        "cloudsigma-csi-driver/" + driver.Version(),
		MaxResponseBytes: cfg.maxResponseBytes, MaxListItems: cfg.maxListItems,
	})
	return c, withFix(err, cfg.credentialsDir)
}

// withFix adds to a configuration error the flag or variable that fixes it.
func withFix(err error, credentialsDir string) error {
	switch {
	case errors.Is(err, cloudsigma.ErrInsecureURL):
		return fmt.Errorf("%w; pass --allow-insecure-http only for a simulator, or use the https URL", err)
	case errors.Is(err, cloudsigma.ErrCredentialsInURL):
		return fmt.Errorf("%w; remove them from --api-url and put them in the credentials Secret (--credentials-dir) or in CLOUDSIGMA_USERNAME and CLOUDSIGMA_PASSWORD", err)
	case errors.Is(err, cloudsigma.ErrNoCredentials) && credentialsDir == "":
		return fmt.Errorf("%w; mount a Secret with the files username and password (or token) and pass --credentials-dir, or set CLOUDSIGMA_USERNAME and CLOUDSIGMA_PASSWORD (or CLOUDSIGMA_TOKEN)", err)
	}
	return err
}

// checkAPI is the controller's periodic API check. A refusal of the
// credentials says so and where they come from: it is the one outage an
// operator fixes rather than waits out.
func checkAPI(client *cloudsigma.Client, credentialsDir string) func(context.Context) error {
	source := "CLOUDSIGMA_USERNAME/CLOUDSIGMA_PASSWORD (or CLOUDSIGMA_TOKEN)"
	if credentialsDir != "" {
		source = "the files in " + credentialsDir
	}
	return func(ctx context.Context) error {
		_, err := client.GetCapabilities(ctx)
		if cloudsigma.IsUnauthorized(err) {
			return fmt.Errorf("CloudSigma rejected the credentials: check the username and password (or token) in %s, and the location (--location/--api-url): %w", source, err)
		}
		return err
	}
}

// credentials come from files in dir (a mounted Secret) or the environment.
// Their values are never logged.
func credentials(dir string) (user, pass, token string, err error) {
	if dir == "" {
		return os.Getenv("CLOUDSIGMA_USERNAME"), os.Getenv("CLOUDSIGMA_PASSWORD"), os.Getenv("CLOUDSIGMA_TOKEN"), nil
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(dir + "/" + name)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return strings.TrimSpace(string(b)), err
	}
	if user, err = read("username"); err == nil {
		if pass, err = read("password"); err == nil {
			token, err = read("token")
		}
	}
	if err == nil && user == "" && token == "" {
		err = fmt.Errorf("credentials directory %s holds neither username nor token", dir)
	}
	return user, pass, token, err
}

// topologyLocation is the value of the topology key: --location, else the
// first label of a *.cloudsigma.com API host, else "local" (a simulator).
func topologyLocation(cfg config) (string, error) {
	if cfg.location != "" {
		return cfg.location, nil
	}
	if cfg.apiURL == "" {
		return "", errors.New("set --api-url or --location")
	}
	u, err := url.Parse(cfg.apiURL)
	if err != nil {
		// url.Error quotes the URL, which may hold a password: drop it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("invalid --api-url: %w", err)
	}
	if host := u.Hostname(); strings.HasSuffix(host, ".cloudsigma.com") {
		return strings.SplitN(host, ".", 2)[0], nil
	}
	return "local", nil
}
