/** The program bin/tracepkt runs (a shell wrapper, so it can shape Node's environment first). */
import { run } from './cli';

run();
