#define _GNU_SOURCE
#include "fiber.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static void work(void *a){(void)a; __asm__ volatile("":::"memory");}
static double tns(void){struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec*1e9+t.tv_nsec;}
/* latency-bound: one dependent add per cycle whatever the sibling does */
static double dep(long n){ unsigned long x=1; double t0=tns();
  for(long i=0;i<n;i++){ __asm__ volatile("add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0":"+r"(x)); }
  return (tns()-t0)/(n*8.0);}
/* throughput-bound: 4 independent add chains per step (4 ALUs), SMT-sensitive */
static double thr(long n){ unsigned long a=1,b=2,c=3,d=4; double t0=tns();
  for(long i=0;i<n;i++){ __asm__ volatile(
   "add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\tadd %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\t"
   "add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\tadd %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3"
   :"+r"(a),"+r"(b),"+r"(c),"+r"(d)); }
  return (tns()-t0)/(n*16.0);}
int main(int argc,char**argv){
  int nb=atoi(argv[1]); long it=atol(argv[2]);
  if(!getenv("NOPIN")){cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(sched_getcpu(),&cs); sched_setaffinity(0,sizeof cs,&cs);}
  for(long i=0;i<it;i++) fiber_join(fiber_spawn(work,NULL));
  for(int b=0;b<nb;b++){ double d=dep(200000), t=thr(200000);
    double t0=tns(); for(long i=0;i<it;i++){fiber_t*f=fiber_spawn(work,NULL); fiber_join(f);} double fj=(tns()-t0)/it;
    printf("%.2f %.4f %.4f %d\n",fj,d,t,sched_getcpu());}
}
