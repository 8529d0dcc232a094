/** spfs entry point: everything lives in cli/. */
import { main } from "./cli/main.ts";

Deno.exit(await main(Deno.args));
