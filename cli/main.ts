import { Command, InvalidArgumentError, Option } from 'commander';
import { choicesOf, CombineRuleName, LocalOptimizer, PrivacyMode, Scheduling, StrategyName, TASK_DEFAULTS, TrainingMode, UpdateBits } from '../shared/protocol/task.ts';
import { BUILTIN_NAMES, DEFAULT_DATASET } from '../shared/data/builtin.ts';
import { MODEL_KINDS } from '../shared/ml/model-spec.ts';
import { ATTACKS, parseByzantine } from '../shared/ml/attacks.ts';
import { parseTrustProxy } from '../server/auth/client-address.ts';

/** `tributary serve | client | gpu-node | demo | cluster | admin | task | bench`: each subcommand loads only what it needs. */

const int = (name: string, min = 0) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};

const positive = (name: string) => (value: string) => {
  const x = Number(value);
  if (!(x > 0) || !Number.isFinite(x)) throw new InvalidArgumentError(`${name} must be a positive number`);
  return x;
};

const nonNegative = (name: string) => (value: string) => {
  const x = Number(value);
  if (!(x >= 0) || !Number.isFinite(x)) throw new InvalidArgumentError(`${name} must be a number ≥ 0`);
  return x;
};

const fraction = (name: string) => (value: string) => {
  const f = Number(value);
  if (!(f > 0 && f <= 1)) throw new InvalidArgumentError(`${name} must be a number in (0, 1]`);
  return f;
};

function trustProxy(value: string) {
  try {
    return parseTrustProxy(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}: expected true, or addresses, CIDRs, loopback, linklocal, uniquelocal separated by commas`);
  }
}

/** The same key for the server and `admin` (which write seeds into the same database). */
const secretsKeyOption = () =>
  new Option('--secrets-key-file <file>', 'the key TOTP seeds are sealed with, made if missing (default: totp.key in --data-dir)').env('TRIBUTARY_SECRETS_KEY_FILE');

/** The same durable state for the server and `admin`: the SQLite file in --data-dir, or one PostgreSQL database. */
const databaseOption = () =>
  new Option('--database <url>', 'postgres://user:password@host:port/db: durable state in PostgreSQL, shared by every server process (cluster mode); default: SQLite in --data-dir').env('TRIBUTARY_DATABASE');

const CRASH_PHASES = ['advertised', 'shared', 'uploaded', 'revealed'] as const;

function crashPoint(value: string): { phase: (typeof CRASH_PHASES)[number]; round?: number } {
  const [phase, round] = value.split(':');
  const found = CRASH_PHASES.find((p) => p === phase);
  if (!found) throw new InvalidArgumentError(`phase must be one of ${CRASH_PHASES.join(', ')}`);
  if (round === undefined) return { phase: found };
  return { phase: found, round: int('round', 1)(round) };
}

function byzantineSpec(value: string) {
  try {
    return parseByzantine(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** `--drop 0.3@after-share[:round]`: which fraction of the demo's clients crash, at which phase. */
const DROP_PHASES = { 'after-advertise': 'advertised', 'after-share': 'shared', 'after-upload': 'uploaded' } as const;

function dropSpec(value: string): { fraction: number; phase: (typeof DROP_PHASES)[keyof typeof DROP_PHASES]; round: number } {
  const match = /^([0-9.]+)@([a-z-]+)(?::([0-9]+))?$/.exec(value);
  const fraction = Number(match?.[1]);
  const phase = DROP_PHASES[match?.[2] as keyof typeof DROP_PHASES];
  if (!match || !(fraction > 0 && fraction < 1) || !phase) {
    throw new InvalidArgumentError(`expected <fraction in (0,1)>@<${Object.keys(DROP_PHASES).join('|')}>[:round], e.g. 0.3@after-share`);
  }
  return { fraction, phase, round: match[3] ? int('round', 1)(match[3]) : 1 };
}

const program = new Command('tributary')
  .description('Federated learning for browsers and edge devices')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the aggregation server (REST API, socket.io, web pages)')
  .option('--port <n>', 'port to listen on', int('port'), 8080)
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--data-dir <dir>', 'where the SQLite database and model checkpoints live', './data')
  .option('--dataset-dir <name=dir...>', `where a built-in data set's files are (default: where its package puts them); names: ${BUILTIN_NAMES.join(', ')}`, [])
  .option('--chunk-kb <n>', 'largest upload chunk clients may send, KiB', int('chunk-kb', 1), 256)
  .option('--log-level <level>', 'pino log level', 'info')
  .addOption(new Option('--log-format <format>', 'auto: readable lines on a terminal, JSON when piped').choices(['auto', 'pretty', 'json']).default('auto'))
  .option('--metrics-public', 'let any address scrape /metrics (default: loopback only)', false)
  .option('--cors-origins <origin...>', 'web app origins allowed to use the API and sockets (pages embedding the SDK)', [])
  .option('--trust-proxy <proxies>', 'reverse proxies (addresses, CIDRs, loopback…, comma-separated, or true) whose X-Forwarded-For/-Proto/-Host to believe', trustProxy)
  .addOption(secretsKeyOption())
  .addOption(databaseOption())
  .addOption(new Option('--redis <url>', 'redis://host:port: socket.io events and relays reach clients on every server process sharing this Redis (cluster mode)').env('TRIBUTARY_REDIS'))
  .option('--heartbeat-timeout <s>', 'seconds a connection may leave a heartbeat unanswered before it counts as lost (clients follow the server; default 20, socket.io\'s own); longer for fleets on slow, crowded links', positive('heartbeat-timeout'))
  .option('--demo-task', `create (if none) and start a demo task on the built-in ${DEFAULT_DATASET} data set`, false)
  .option('--demo-clients <n>', 'with --demo-task: also run N edge client processes', int('demo-clients'), 0)
  .action(async (opts) => {
    const { serve } = await import('../server/serve.ts');
    const { url, demo } = await serve(opts);
    if (demo && opts.demoClients > 0) {
      const { edgeClientArgs, spawnTributary, tokenEnv } = await import('./processes.ts');
      const { join } = await import('node:path');
      for (let shard = 0; shard < opts.demoClients; shard++) {
        const child = spawnTributary(edgeClientArgs(url, demo.taskId, shard, opts.datasetDir, opts.dataDir), join(opts.dataDir, `client-${shard}.log`), tokenEnv(demo.token));
        process.once('exit', () => child.kill());
      }
      console.log(`${opts.demoClients} edge clients training (logs: ${opts.dataDir}/client-*.log)`);
    }
  });

program
  .command('client')
  .description('run an edge client that trains on its local data shard')
  .requiredOption('--task <id>', 'task to join', int('task', 1))
  .option('--server <url>', 'server URL', 'http://127.0.0.1:8080')
  .option('--shard <n>', 'demo data shard to train on (default: the server assigns one)', int('shard'))
  .addOption(new Option('--backend <name>', 'TF.js backend').choices(['auto', 'wasm', 'cpu']).default('auto'))
  .option('--data <path>', "this device's own data: a CSV file (tables), a folder with one subfolder of PNG/JPEG images per label, or a text file; default: the task's demo shard")
  .option('--dataset-dir <name=dir...>', `where a built-in data set's files are (default: where its package puts them); names: ${BUILTIN_NAMES.join(', ')}`, [])
  .option('--seed <n>', 'seed for stochastic rounding', int('seed'))
  .option('--json', 'one JSON object per event', false)
  .option('--pin-file <file>', 'where server keys are pinned at first contact (default ~/.tributary/known-servers.json)')
  .option('--identity-file <file>', "this device's Ed25519 identity, created at first run (default ~/.tributary/identity.json)")
  .option('--token <token>', 'enrollment token from the task\'s operator (needed once: the identity stays enrolled); visible to other users in ps, prefer --token-file or TRIBUTARY_TOKEN')
  .addOption(new Option('--token-file <file>', 'read the enrollment token from this file (default: TRIBUTARY_TOKEN from the environment)').conflicts('token'))
  .option('--open-enrollment', 'enroll through the task\'s open enrollment instead of a token', false)
  .option('--throttle <fraction>', 'train at this fraction of full speed (0 < f ≤ 1), idling between steps', fraction('throttle'), 1)
  .option('--crash-at <phase[:round]>', 'fault injection: die (SIGKILL) when a secure round reaches advertised|shared|uploaded|revealed', crashPoint)
  .option('--disconnect-every <ms>', 'fault injection: drop the connection at random, on average this often (the client reconnects and resumes)', int('disconnect-every', 100))
  .addOption(new Option('--attack <name>', 'robustness experiments: send malicious updates instead of honest ones').choices([...ATTACKS]))
  .option('--alie-z <z>', 'with --attack alie: z_max, how many standard deviations to shift (the demo computes it from n and f)', positive('alie-z'))
  .action(async (opts) => {
    const { runEdgeClient } = await import('../client/node/edge.ts');
    const status = await runEdgeClient({ ...opts, taskId: opts.task });
    process.exit(status === 'completed' ? 0 : 1);
  });

program
  .command('gpu-node')
  .description('run a GPU node that trains through WebGPU (Dawn), or on WASM/CPU with a warning when there is no adapter')
  .requiredOption('--task <id>', 'task to join', int('task', 1))
  .option('--server <url>', 'server URL', 'http://127.0.0.1:8080')
  .option('--shard <n>', 'demo data shard to train on (default: the server assigns one)', int('shard'))
  .addOption(new Option('--backend <name>', 'TF.js backend (auto: webgpu if Dawn finds an adapter, else wasm or cpu)').choices(['auto', 'webgpu', 'wasm', 'cpu']).default('auto'))
  .option('--data <path>', "this node's own data (as for client --data); default: the task's demo shard")
  .option('--dataset-dir <name=dir...>', `where a built-in data set's files are (default: where its package puts them); names: ${BUILTIN_NAMES.join(', ')}`, [])
  .option('--seed <n>', 'seed for stochastic rounding', int('seed'))
  .option('--json', 'one JSON object per event', false)
  .option('--pin-file <file>', 'where server keys are pinned at first contact (default ~/.tributary/known-servers.json)')
  .option('--identity-file <file>', "this node's Ed25519 identity, created at first run (default ~/.tributary/gpu-identity.json)")
  .option('--token <token>', 'gpu enrollment token from the task\'s operator (needed once: the identity stays enrolled); visible to other users in ps, prefer --token-file or TRIBUTARY_TOKEN')
  .addOption(new Option('--token-file <file>', 'read the gpu enrollment token from this file (default: TRIBUTARY_TOKEN from the environment)').conflicts('token'))
  .option('--throttle <fraction>', 'train at this fraction of full speed (0 < f ≤ 1), idling between steps', fraction('throttle'), 1)
  .addHelpText('after', `
Without a GPU, Dawn finds an adapter through SwiftShader (Debian packages chromium and libvulkan1):
  VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json TRIBUTARY_TOKEN=trb_gpu_… tributary gpu-node --task 1`)
  .action(async (opts) => {
    const { runGpuNode } = await import('../client/node/gpu-node.ts');
    const status = await runGpuNode({ ...opts, taskId: opts.task });
    process.exit(status === 'completed' ? 0 : 1);
  });

program
  .command('demo')
  .description('start a server and N edge clients as separate processes and train R rounds')
  .option('--clients <n>', 'edge client processes', int('clients', 1), 10)
  .option('--rounds <n>', 'rounds to run', int('rounds', 1), 20)
  .addOption(new Option('--task <name>', 'the built-in task to train').choices(BUILTIN_NAMES).default(DEFAULT_DATASET))
  .addOption(new Option('--model <kind>', "model architecture (default: the task's own)").choices(MODEL_KINDS))
  .option('--partition <spec>', "iid, source (by the data's own sources), dirichlet:<alpha> or sizes:<w1>,… (default: dirichlet:0.5 for images, source otherwise)")
  .addOption(new Option('--bits <b>', 'update quantization bits (32 = float32)').choices(choicesOf(UpdateBits).map(String)).default(String(TASK_DEFAULTS.bits)))
  .option('--local-epochs <n>', "local epochs per round (default: the task's)", int('local-epochs', 1))
  .option('--batch-size <n>', "local batch size (default: the task's)", int('batch-size', 1))
  .option('--lr <rate>', "local learning rate (default: the task's)", positive('lr'))
  .addOption(new Option('--optimizer <name>', "local optimizer (default: the task's)").choices(choicesOf(LocalOptimizer)))
  .option('--proximal-mu <mu>', 'FedProx: weight of the proximal term μ/2·‖w − w_global‖² in local training (0 = off)', Number, 0)
  .option('--seed <n>', 'seed for partition, initial model and rounding', int('seed'), 1)
  .option('--train-limit <n>', 'use only the first N training samples (0: all)', int('train-limit'), 0)
  .option('--test-limit <n>', 'the server evaluates on the first N test samples (0: all)', int('test-limit'), 0)
  .option('--eval-every <k>', 'federated evaluation every k rounds (0: never)', int('eval-every'), TASK_DEFAULTS.evaluation.every)
  .option('--dataset-dir <name=dir...>', `where a built-in data set's files are (default: where its package puts them); names: ${BUILTIN_NAMES.join(', ')}`, [])
  .option('--data-dir <dir>', 'server state folder (default: a fresh temporary folder)')
  .option('--port <n>', 'server port (default: a free one)', int('port'), 0)
  .addOption(new Option('--backend <name>', 'TF.js backend for clients').choices(['auto', 'wasm', 'cpu']).default('auto'))
  .addOption(new Option('--strategy <name>', 'server optimizer').choices(choicesOf(StrategyName)).default(TASK_DEFAULTS.strategy))
  .addOption(new Option('--mode <mode>', 'sync rounds, or async FedBuff (no waiting for the slowest)').choices(choicesOf(TrainingMode)).default(TASK_DEFAULTS.mode))
  .addOption(new Option('--scheduling <how>', 'uniform: every client trains its epochs (reproducible runs); capability: work sized by measured speed').choices(choicesOf(Scheduling)).default('uniform'))
  .option('--buffer-size <k>', 'with --mode async: updates per server step (default: half the clients)', int('buffer-size', 1), 0)
  .option('--secure', 'secure aggregation (SecAgg+): the server learns only the sum of the updates', false)
  .option('--threshold <t>', 'with --secure: shares needed to unmask (default: a majority of each secret\'s holders)', int('threshold', 2))
  .option('--neighbours <k>', 'with --secure: neighbours per client (default ≈ 2·log2 n; n − 1 = classic SecAgg)', int('neighbours', 1))
  .option('--drop <fraction@phase>', 'with --secure: that fraction of clients crash at after-advertise|after-share|after-upload (in round 1, or :<round>)', dropSpec)
  .addOption(new Option('--rule <name>', 'how each round\'s updates are combined (robust rules need plain rounds)').choices(choicesOf(CombineRuleName)).default(TASK_DEFAULTS.aggregation.rule))
  .option('--trim <beta>', 'with --rule trimmed-mean: fraction dropped from each end of every coordinate, [0, 0.5)', nonNegative('trim'), TASK_DEFAULTS.aggregation.trim)
  .option('--tolerate <f>', 'with --rule krum|multi-krum|bulyan: attackers per round the rule withstands', int('tolerate'), TASK_DEFAULTS.aggregation.byzantine)
  .option('--norm-bound <c>', 'clip every update to this L2 norm (secure rounds: on the device); 0 = off', nonNegative('norm-bound'), 0)
  .option('--byzantine <fraction:attack>', `that fraction of the clients attack: ${ATTACKS.join('|')}, e.g. 0.2:alie`, byzantineSpec)
  .addOption(new Option('--privacy <mode>', 'differential privacy: central (DP-FedAvg on the server) or distributed (device noise, needs --secure)').choices(choicesOf(PrivacyMode)).default('off'))
  .option('--epsilon <e>', 'with --privacy: target ε for the whole task', positive('epsilon'), TASK_DEFAULTS.privacy.epsilon)
  .option('--delta <d>', 'with --privacy: target δ', positive('delta'), TASK_DEFAULTS.privacy.delta)
  .option('--clip-norm <c>', 'with --privacy: each update\'s L2 clip C', positive('clip-norm'), TASK_DEFAULTS.privacy.clipNorm)
  .option('--noise-multiplier <z>', 'with --privacy: noise std over C (0 = the least that fits the budget)', nonNegative('noise-multiplier'), 0)
  .option('--target-quantile <q>', 'with --privacy central: adapt C to this quantile of update norms (0 = fixed C)', nonNegative('target-quantile'), 0)
  .option('--min-updates <n>', 'fewest updates a round counts with (distributed DP: the survivors whose noise adds up)', int('min-updates', 1), 1)
  .option('--json', 'one JSON object per completed round, then a summary', false)
  .action(async (opts) => {
    if (opts.drop && !opts.secure) throw new InvalidArgumentError('--drop needs --secure');
    if (opts.secure && opts.mode === 'async') throw new InvalidArgumentError('--secure needs sync rounds (--mode sync)');
    const { runDemo } = await import('./demo.ts');
    const { rule, trim, tolerate, normBound, privacy, epsilon, delta, clipNorm, noiseMultiplier, targetQuantile, ...rest } = opts;
    const ok = await runDemo({
      ...rest,
      bits: Number(opts.bits),
      aggregation: { rule, trim, byzantine: tolerate, normBound },
      privacy: { mode: privacy, epsilon, delta, clipNorm, noiseMultiplier, targetQuantile },
    });
    process.exit(ok ? 0 : 1);
  });

program
  .command('cluster')
  .description('run a local cluster: Redis, PostgreSQL, N server processes sharing them, nginx (deploy/nginx.conf) in front')
  .option('--processes <n>', 'server processes', int('processes', 1), 3)
  .option('--port <n>', "nginx's port: the cluster's one address", int('port', 1), 8000)
  .option('--data-dir <dir>', 'where everything is kept between runs: redis/, postgres/, nginx/, the servers\' shared server/ and their logs', './cluster-data')
  .option('--demo-task', `the first process creates (if none) and starts a demo task on the built-in ${DEFAULT_DATASET} data set`, false)
  .option('--log-level <level>', "the servers' pino log level", 'info')
  .addHelpText('after', '\nNeeds redis-server, PostgreSQL 15 and nginx (bash scripts/setup.sh installs them). Ctrl-C stops everything.')
  .action(async (opts) => {
    const { runCluster } = await import('./cluster.ts');
    await runCluster(opts);
  });

const ROLES = ['viewer', 'operator', 'admin'];
const admin = program
  .command('admin')
  .description("manage accounts on a server's state folder, or its PostgreSQL database (works while it runs)")
  .addHelpText('after', `
Each command works on the SQLite database in --data-dir or, with --database <url>
(or TRIBUTARY_DATABASE), on the PostgreSQL database the server runs on (serve
--database). Either way TOTP seeds are sealed with the key in --data-dir (or
--secrets-key-file).`);

admin
  .command('create')
  .description('create a user (the first admin, say): prints their TOTP secret and recovery codes once')
  .requiredOption('--username <name>', 'login name')
  .addOption(new Option('--role <role>', 'role').choices(ROLES).default('admin'))
  .option('--data-dir <dir>', "the server's state folder", './data')
  .option('--password-file <file>', 'read the password from a file (default: prompt)')
  .addOption(secretsKeyOption())
  .addOption(databaseOption())
  .option('--json', 'machine-readable output', false)
  .action(async (opts) => {
    const { createUser } = await import('./admin.ts');
    await createUser(opts);
  });

admin
  .command('token')
  .description('create an API token (Authorization: Bearer …) acting as a user, for scripts')
  .requiredOption('--username <name>', 'the user it acts as')
  .option('--name <name>', 'what the token is for', 'cli')
  .option('--create', 'create the user if missing (token-only: a random password)', false)
  .addOption(new Option('--role <role>', 'with --create: the role').choices(ROLES).default('operator'))
  .option('--data-dir <dir>', "the server's state folder", './data')
  .addOption(secretsKeyOption())
  .addOption(databaseOption())
  .option('--json', 'machine-readable output', false)
  .action(async (opts) => {
    const { createApiToken } = await import('./admin.ts');
    await createApiToken(opts);
  });

const task = program.command('task').description('manage tasks on a running server, over REST with an operator API token');

task
  .command('create')
  .description("create a task from a TF.js Layers model (model.json and its weights) and a data schema; prints the new task's id")
  .requiredOption('--model <file>', "model.json, as tensorflowjs_converter (Keras) or TF.js's model.save() writes it")
  .option('--weights <file>', "the weights (default: the files model.json's manifest lists, beside it, if they are there)")
  .option('--schema <file>', "the devices' data schema, JSON: image, tabular or text (see the README); devices bring their own data")
  .addOption(new Option('--dataset <name>', 'a built-in data set (its schema and demo shards) instead of --schema').choices(BUILTIN_NAMES).conflicts('schema'))
  .requiredOption('--name <name>', 'task name')
  .option('--server <url>', 'server URL', 'http://127.0.0.1:8080')
  .option('--rounds <n>', `rounds to run (default ${TASK_DEFAULTS.rounds})`, int('rounds', 1))
  .option('--clients-per-round <n>', `clients a round waits for (default ${TASK_DEFAULTS.clientsPerRound})`, int('clients-per-round', 1))
  .option('--min-updates <n>', 'fewest updates a round may close with after its deadline (default 1)', int('min-updates', 1))
  .option('--local-epochs <n>', 'local epochs per round', int('local-epochs', 1))
  .option('--batch-size <n>', 'local batch size', int('batch-size', 1))
  .option('--lr <rate>', 'local learning rate', positive('lr'))
  .addOption(new Option('--optimizer <name>', 'local optimizer').choices(choicesOf(LocalOptimizer)))
  .option('--seed <n>', 'seed for selection and rounding', int('seed'))
  .option('--settings <file>', "any other task settings, a JSON object of the REST body's fields (the options above override it)")
  .option('--token-file <file>', 'read the operator API token from this file (default: TRIBUTARY_API_TOKEN from the environment)')
  .option('--json', 'print the created task as JSON', false)
  .addHelpText('after', `
Limits: model.json 2 MiB, weights 64 MiB, 20 million parameters; only layer classes TF.js ships.
Example:
  TRIBUTARY_API_TOKEN=trb_… tributary task create --server http://127.0.0.1:8080 \\
    --model ./model/model.json --schema ./schema.json --name churn --rounds 20 --clients-per-round 5`)
  .action(async (opts) => {
    const { runCreateTask } = await import('./task.ts');
    await runCreateTask(opts);
  });

program
  .command('bench')
  .description('run a benchmark: quantization, secagg, optimizers, chaos, cluster-chaos (3 server processes, kills and a Redis restart), scheduling, browser, robustness, privacy, tasks (built-in tasks federated vs central), overhead (SDK round vs raw TF.js), update-size (bytes per parameter), federated-evaluation (devices\' scores vs the server\'s), load (thousands of simulated clients), aggregation-kernel')
  .argument('<name>', 'benchmark to run')
  // The load bench reads its own flags: --per-round K, --workers W, --churn F, --per-address A, --deadline-s S.
  .allowUnknownOption()
  .allowExcessArguments()
  .addHelpText('after', '\nload (simulated clients against a real server): --clients N (default 10000) --per-round K (1000) --rounds R (20) --workers W --churn F (0.1) --per-address A (25) --deadline-s S (600) --processes N (1: embedded; more: a local cluster behind nginx) --secure (SecAgg+ rounds, each model checked bit for bit)\naggregation-kernel: folding 8-bit updates into the running sum, against memcpy')
  .option('--tasks <list>', 'tasks, overhead, update-size: the built-in tasks to run, comma-separated (default: all)')
  .option('--rounds <n>', 'rounds per run', int('rounds', 1), 20)
  .option('--clients <n>', 'clients per run (default 10; robustness: 20, so that Bulyan with f = 4 is defined; cluster-chaos: 50)', int('clients', 1))
  .option('--out <dir>', 'where tables and plots are written', 'bench-results')
  .action(async (name: string, opts) => {
    const { runBench } = await import('../bench/index.ts');
    const defaultClients: Record<string, number> = { robustness: 20, 'cluster-chaos': 50 };
    await runBench(name, { ...opts, clients: opts.clients ?? defaultClients[name] ?? 10 });
  });

await program.parseAsync();
