import { runAgainElsewhere, startDock } from "./jobs-live.js";

startDock({ onRunAgain: runAgainElsewhere });
