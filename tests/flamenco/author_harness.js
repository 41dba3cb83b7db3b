// A small stand-in for Flamenco Manager's job compiler runtime, written for these tests from Flamenco's documented
// job-type API: a script defines JOB_TYPE and compileJob(job); it can call author.Task(name, type),
// author.Command(name, parameters, totalStepCount), task.addCommand(), task.addDependency(), job.addTask(), and
// the globals print, alert, frameChunker, frameCount, formatTimestampLocal, shellSplit, path and process.
// Scripts run in strict mode, as the Manager compiles them.
"use strict";

const fs = require("node:fs");
const nodePath = require("node:path");
const vm = require("node:vm");
const crypto = require("node:crypto");

// Frame ranges like "1-10,20..25,40" as a sorted list of frames without duplicates.
function explode(frameRange) {
    const frames = new Set();
    for (const part of `${frameRange}`.trim().replaceAll("..", "-").split(",")) {
        const ends = part.split("-").map((v) => v.trim());
        if (ends.length === 1 && /^\d+$/.test(ends[0])) {
            frames.add(parseInt(ends[0], 10));
        } else if (ends.length === 2 && /^\d+$/.test(ends[0]) && /^\d+$/.test(ends[1])) {
            for (let f = parseInt(ends[0], 10); f <= parseInt(ends[1], 10); f++) frames.add(f);
        } else {
            throw new Error(`invalid range "${frameRange}": ${part}`);
        }
    }
    return [...frames].sort((a, b) => a - b);
}

// Consecutive frames merged back: "3-8,13,15-17"; a run of exactly two frames is written "A,B".
function merge(frames) {
    const out = [];
    let start = frames[0];
    let previous = frames[0];
    const close = (a, b) => out.push(a === b ? `${a}` : a + 1 === b ? `${a},${b}` : `${a}-${b}`);
    for (const frame of frames.slice(1)) {
        if (frame > previous + 1) {
            close(start, previous);
            start = frame;
        }
        previous = frame;
    }
    close(start, previous);
    return out.join(",");
}

function frameChunker(frameRange, chunkSize) {
    if (chunkSize < 1) throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    const frames = explode(frameRange);
    if (frames.length === 0) throw new Error(`invalid range "${frameRange}": empty range`);
    const chunks = [];
    for (let i = 0; i < frames.length; i += chunkSize) chunks.push(merge(frames.slice(i, i + chunkSize)));
    return chunks;
}

function shellSplit(text) {
    const out = [];
    const pattern = /"([^"]*)"|'([^']*)'|(\S+)/g;
    let match;
    while ((match = pattern.exec(text)) !== null) out.push(match[1] ?? match[2] ?? match[3]);
    return out;
}

class AuthoredTask {
    constructor(name, type) {
        if (!`${name}`.trim()) throw new Error("author.Task(name, type): name is required");
        if (!`${type}`.trim()) throw new Error("author.Task(name, type): type is required");
        this.uuid = crypto.randomUUID();
        this.name = `${name}`.trim();
        this.type = `${type}`.trim();
        this.priority = 50;
        this.commands = [];
        this.dependencies = [];
    }

    addCommand(command) {
        this.commands.push(command);
    }

    addDependency(task) {
        this.dependencies.push(task);
    }
}

const author = {
    Task: (name, type) => new AuthoredTask(name, type),
    Command: (name, parameters, totalStepCount) => ({ name, parameters, totalStepCount: totalStepCount || 0 }),
};

const path = {
    basename: (p) => nodePath.posix.basename(p),
    dirname: (p) => nodePath.posix.dirname(p),
    join: (...parts) => nodePath.posix.join(...parts),
    stem: (p) => nodePath.posix.basename(p, nodePath.posix.extname(p)),
};

// Load a job compiler script: returns {jobType, compile(settings)}; compile returns the authored job.
function loadJobType(file) {
    const log = [];
    const context = vm.createContext({
        author, path, process: { platform: "linux" }, frameChunker, shellSplit,
        frameCount: (range) => explode(range).length,
        formatTimestampLocal: (date) => date.toISOString().slice(0, 19).replace("T", "_").replaceAll(":", ""),
        print: (...args) => log.push(args.join(" ")),
        alert: (...args) => log.push(`alert: ${args.join(" ")}`),
    });
    const source = fs.readFileSync(file, "utf8");
    new vm.Script(`"use strict";\n${source}`, { filename: file }).runInContext(context);
    const jobType = vm.runInContext("JOB_TYPE", context);
    return {
        jobType,
        log,
        context,
        compile(settings, name = "job") {
            const job = {
                name, jobType: path.stem(file), priority: 50, created: new Date(), settings: { ...settings },
                metadata: {}, tasks: [],
                addTask(task) {
                    this.tasks.push(task);
                },
            };
            context.compileJob(job);
            // Plain data of this realm (the script's arrays belong to the sandbox): dependencies as task uuids.
            const tasks = job.tasks.map((t) => ({
                uuid: t.uuid, name: t.name, type: t.type, priority: t.priority,
                commands: JSON.parse(JSON.stringify(t.commands)), dependencies: t.dependencies.map((d) => d.uuid),
            }));
            return { name: job.name, settings: JSON.parse(JSON.stringify(job.settings)), tasks };
        },
    };
}

module.exports = { loadJobType, frameChunker, explode };
